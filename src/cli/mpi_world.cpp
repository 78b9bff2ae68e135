#include "cli/mpi_world.hpp"

#include <cstdlib>

#ifdef LPSIM_HAVE_MPI
#include <mpi.h>
#endif

namespace lpsim::cli {

namespace {
MpiWorld world;
}

const MpiWorld& mpi_world() { return world; }

MpiWorld mpi_start(int& argc, char**& argv) {
#ifdef LPSIM_HAVE_MPI
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK")) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    world.active = true;
  }
#else
  (void)argc, (void)argv;
#endif
  return world;
}

void mpi_barrier(const MpiWorld& w) {
#ifdef LPSIM_HAVE_MPI
  if (w.active) MPI_Barrier(MPI_COMM_WORLD);
#else
  (void)w;
#endif
}

bool mpi_all(const MpiWorld& w, bool ok) {
#ifdef LPSIM_HAVE_MPI
  if (w.active) {
    int mine = ok ? 1 : 0, all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all == 1;
  }
#else
  (void)w;
#endif
  return ok;
}

void mpi_stop(const MpiWorld& w) {
#ifdef LPSIM_HAVE_MPI
  if (w.active) MPI_Finalize();
#else
  (void)w;
#endif
}

}  // namespace lpsim::cli
