#pragma once
// MPI for `mpirun -np N lpsim sweep FILE`: each rank runs the shard rank/N, rank 0 assembles the final files.
// Without an MPI build (or outside mpirun) there is one rank and nothing else changes.
namespace lpsim::cli {

struct MpiWorld {
  int rank = 0, size = 1;
  bool active = false;
};

// Starts MPI when built with it and launched by mpirun (OpenMPI's or PMI's environment); else a world of one.
MpiWorld mpi_start(int& argc, char**& argv);
void mpi_barrier(const MpiWorld& w);
// True when every rank says ok (rank failures must not leave rank 0 waiting or assembling).
bool mpi_all(const MpiWorld& w, bool ok);
void mpi_stop(const MpiWorld& w);
const MpiWorld& mpi_world();

}  // namespace lpsim::cli
