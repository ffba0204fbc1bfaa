// Entering a network namespace for the duration of one synchronous call.
//
// setns(2) moves only the calling thread. Everything created while switched (sockets, /proc/sys files opened for
// writing) stays bound to the target namespace after we switch back, which is the whole point; but a thread stuck
// in the wrong namespace would silently misplace every later socket of the agent (API server, metrics, next CNI
// request). So the guard restores the thread's own namespace on destruction and aborts the process if it cannot.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

namespace koa {

class NsGuard {
 public:
  // path == nullptr or "" means: stay where we are (the agent's own namespace).
  explicit NsGuard(const char* path) {
    if (path == nullptr || path[0] == '\0') return;
    // /proc/thread-self, not /proc/self: the latter is the thread-group leader, wrong inside a worker thread.
    self_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self_ < 0) { err_ = errno; step_ = "open /proc/thread-self/ns/net"; return; }
    int target = open(path, O_RDONLY | O_CLOEXEC);
    if (target < 0) { err_ = errno; step_ = "open netns"; return; }
    if (setns(target, CLONE_NEWNET) != 0) {
      err_ = errno; step_ = "setns";
      close(target);
      return;
    }
    close(target);
    switched_ = true;
  }
  ~NsGuard() {
    if (switched_ && setns(self_, CLONE_NEWNET) != 0) {
      perror("koa_native: cannot restore the thread's network namespace");
      abort();
    }
    if (self_ >= 0) close(self_);
  }
  NsGuard(const NsGuard&) = delete;
  NsGuard& operator=(const NsGuard&) = delete;

  bool ok() const { return err_ == 0; }
  int err() const { return err_; }
  const char* step() const { return step_; }

 private:
  int self_ = -1;
  int err_ = 0;
  bool switched_ = false;
  const char* step_ = nullptr;
};

}  // namespace koa
