#pragma once
// Writes a whole file under a temporary name and renames it: readers and resumed runs see the old file or the
// complete new one, never a torn one. What a user names is never replaced by something else: a symbolic link is
// written through (its target gets the new contents, the link stays), a device or FIFO (-o /dev/null) is written
// in place, a directory is refused. The temporary file is created exclusively, so no file or link of that name
// beside the target is ever followed or overwritten. A replaced file keeps its permission bits.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "lpsim/config/config_error.hpp"

namespace lpsim {

// The file a write to `path` lands in: symbolic links followed, dangling or not.
inline std::filesystem::path write_target(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target = path;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(target, ec)); ++hops) {  // follow the chain, dangling or not
    if (hops == 40) throw ConfigError(fmt::format("cannot write '{}': too many levels of symbolic links", path));
    const fs::path next = fs::read_symlink(target, ec);
    if (ec) throw ConfigError(fmt::format("cannot resolve the symbolic link '{}': {}", path, ec.message()));
    target = next.is_absolute() ? next : target.parent_path() / next;
  }
  return target;
}

// Before any work: throws ConfigError when write_atomically(path, ...) would fail (a directory, a folder that
// cannot be made or written). Creates the missing folders and probes the one that will hold the file with a
// file created and removed there (root passes access(2) checks that a read-only file system still refuses).
inline void check_writable(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target = write_target(path);
  const fs::file_status st = fs::status(target, ec);
  if (fs::is_directory(st)) throw ConfigError(fmt::format("cannot write '{}': it is a directory", path));
  if (fs::exists(st) && !fs::is_regular_file(st)) return;  // a device or FIFO: written in place, not probed
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  fs::create_directories(dir, ec);
  if (ec) throw ConfigError(fmt::format("cannot write '{}': cannot create '{}': {}", path, dir.string(), ec.message()));
  const std::string probe = (dir / fmt::format(".lpsim-probe{}", static_cast<long>(getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 && errno != EEXIST)
    throw ConfigError(fmt::format("cannot write '{}': the folder '{}' is not writable: {}", path, dir.string(),
                                  std::strerror(errno)));
  if (fd >= 0) ::close(fd), ::unlink(probe.c_str());
}

inline void write_atomically(const std::string& path, const std::string& contents) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target = write_target(path);
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
  // A file replaced keeps its permissions (a 0600 result stays private); a new one gets 0644 less the umask.
  if (struct stat old {}; fs::is_regular_file(st) && ::stat(target.c_str(), &old) == 0) ::fchmod(fd, old.st_mode & 07777);
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
