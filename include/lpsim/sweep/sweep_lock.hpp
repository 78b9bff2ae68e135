#pragma once
// One process per sweep shard: an exclusive flock(2) on results/<name>/parts/.lock-<shard>-of-<shards>, held while
// the sweep runs and released by the kernel when the process ends (also on SIGKILL), so a stale lock never blocks a
// resume. Two processes on different shards of one sweep run side by side; two on the same shard are refused.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include <string>

#include "lpsim/config/config_error.hpp"

namespace lpsim {

class SweepLock {
 public:
  SweepLock(const std::string& parts_dir, int shard, int shards)
      : path_(fmt::format("{}/.lock-{}-of-{}", parts_dir, shard, shards)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0) throw ConfigError(fmt::format("{}: cannot open the sweep's lock file", path_));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = {};
      const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
      ::close(fd_);
      throw ConfigError(fmt::format("{}: another lpsim sweep is running shard {} of {} here (pid {}); wait for it, or "
                                    "run another shard (--shard)", path_, shard, shards,
                                    n > 0 ? std::string(pid, std::size_t(n)) : std::string("unknown")));
    }
    const std::string me = std::to_string(::getpid());
    if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, me.data(), me.size(), 0) < 0) {
    }  // the pid is for the message only
  }
  ~SweepLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  SweepLock(const SweepLock&) = delete;
  SweepLock& operator=(const SweepLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace lpsim
