#pragma once
// Writes a whole file under a temporary name and renames it: readers and resumed runs see the old file or the
// complete new one, never a torn one. What a user names is never replaced by something else: a symbolic link is
// written through (its target gets the new contents, the link stays), a device or FIFO (-o /dev/null) is written
// in place, a directory is refused. The temporary file is created exclusively, so no file or link of that name
// beside the target is ever followed or overwritten.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "lpsim/config/config_error.hpp"

namespace lpsim {

inline void write_atomically(const std::string& path, const std::string& contents) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target = path;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(target, ec)); ++hops) {  // follow the chain, dangling or not
    if (hops == 40) throw ConfigError(fmt::format("cannot write '{}': too many levels of symbolic links", path));
    const fs::path next = fs::read_symlink(target, ec);
    if (ec) throw ConfigError(fmt::format("cannot resolve the symbolic link '{}': {}", path, ec.message()));
    target = next.is_absolute() ? next : target.parent_path() / next;
  }
  const fs::file_status st = fs::status(target, ec);
  if (fs::is_directory(st)) throw ConfigError(fmt::format("cannot write '{}': it is a directory", path));
  if (fs::exists(st) && !fs::is_regular_file(st)) {  // a device or FIFO: written in place, never renamed over
    std::ofstream out(target, std::ios::binary);
    out << contents;
    out.flush();
    if (!out) throw ConfigError(fmt::format("cannot write '{}'", path));
    return;
  }
  const std::string tmp = fmt::format("{}.tmp{}", target.string(), static_cast<long>(getpid()));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 && errno == EEXIST && fs::is_regular_file(fs::symlink_status(tmp, ec))) {
    // Left by a killed process that had our pid (pids are reused): no live process writes under it but us.
    ::unlink(tmp.c_str());
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  }
  if (fd < 0) throw ConfigError(fmt::format("cannot create '{}': {}", tmp, std::strerror(errno)));
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd), ::unlink(tmp.c_str());
      throw ConfigError(fmt::format("writing '{}' failed: {}", tmp, why));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw ConfigError(fmt::format("writing '{}' failed: {}", tmp, std::strerror(errno)));
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    throw ConfigError(fmt::format("cannot move '{}' to '{}': {}", tmp, target.string(), ec.message()));
  }
}

// Removes regular files named <anything>.tmp<pid> in `dir` whose pid is no running process: what a killed write
// left behind. A live writer's temporary (another shard's) is kept.
inline void remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const auto at = name.rfind(".tmp");
    if (at == std::string::npos || at + 4 == name.size() || !e.is_regular_file(ec)) continue;
    const std::string digits = name.substr(at + 4);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const long pid = std::stol(digits);
    if (pid != static_cast<long>(getpid()) && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) fs::remove(e.path(), ec);
  }
}

}  // namespace lpsim
