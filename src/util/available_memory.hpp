#pragma once
// Memory the system can give now (MemAvailable in /proc/meminfo), in bytes; 0 when unknown. Size checks compare
// their estimates with it before allocating, so a run too big is refused with a message, not killed.
#include <fstream>
#include <string>

namespace lpsim {

inline double available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  while (in >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

}  // namespace lpsim
