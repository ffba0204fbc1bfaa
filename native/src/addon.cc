// koa_native: the few things Node cannot do itself.
//
//  - sockets opened inside a network namespace given by a path (netlink, packet, raw/ICMP), returned as plain fds;
//  - sendto/recv/bind/setsockopt/close on those fds (addresses are sockaddr bytes built by the TypeScript side);
//    recv never blocks when its timeout is 0;
//  - `exchange`: one netlink request and all its answers on the libuv thread pool (sendto on rtnetlink runs the
//    request under the RTNL lock inside the syscall, which takes 15-30 ms when a veth is deleted next door, so it
//    must not run on the event loop);
//  - `Poller`: a socket's readability as an event on the loop (uv_poll), for subscriptions and packet receive;
//  - a namespace file opened as an fd (for IFLA_NET_NS_FD);
//  - a sysctl write/read inside a namespace (/proc/sys/net reflects the namespace of the thread that opens it) and
//    the legacy SIOCETHTOOL get/set of one ethtool_value (TX checksum offload; takes the RTNL lock): on the pool,
//    with the worker thread switched into the namespace and back (the *Async functions).
//
// Nothing here ever yields while switched: every function enters, does its syscalls and leaves (NsGuard), on the
// main thread or on a pool thread. Errors are JS Errors with `code` (errno name, e.g. "ENOENT"), `errno` (number)
// and `syscall`.
#include <napi.h>

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>
#include <string>
#include <vector>

#include <uv.h>

#include "netns.h"

namespace {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& detail = "") {
  const char* name = strerrorname_np(err);
  std::string msg = std::string(syscall) + (detail.empty() ? "" : " " + detail) + ": " + strerror(err) +
                    " (" + (name ? name : "E?") + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

// Optional namespace path argument: undefined/null/"" = the caller's own namespace.
std::string NsArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return "";
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), "netns path must be a string or null");
  return info[i].As<Napi::String>().Utf8Value();
}

int IntArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Uint8Array/Buffer");
  return info[i].As<Napi::Uint8Array>();
}

void ThrowGuard(Napi::Env env, const koa::NsGuard& g, const std::string& path) {
  throw ErrnoError(env, g.err(), g.step(), path);
}

// socketInNetns(netnsPath|null, domain, type, protocol) -> fd
Napi::Value SocketInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = NsArg(info, 0);
  int domain = IntArg(info, 1, "domain"), type = IntArg(info, 2, "type"), proto = IntArg(info, 3, "protocol");
  int fd, err = 0;
  {
    koa::NsGuard g(path.c_str());
    if (!g.ok()) ThrowGuard(env, g, path);
    fd = socket(domain, type | SOCK_CLOEXEC, proto);
    if (fd < 0) err = errno;
  }
  if (fd < 0) throw ErrnoError(env, err, "socket");
  return Napi::Number::New(env, fd);
}

// openNetns(path) -> fd (O_RDONLY|O_CLOEXEC), e.g. for IFLA_NET_NS_FD.
Napi::Value OpenNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(env, errno, "open", path);
  return Napi::Number::New(env, fd);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  if (close(fd) != 0 && errno != EINTR) throw ErrnoError(info.Env(), errno, "close");
  return info.Env().Undefined();
}

// sendto(fd, data, sockaddr|null) -> bytes sent
Napi::Value SendTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  Napi::Uint8Array data = BytesArg(info, 1, "data");
  const sockaddr* sa = nullptr;
  socklen_t salen = 0;
  if (info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined()) {
    Napi::Uint8Array a = BytesArg(info, 2, "sockaddr");
    sa = reinterpret_cast<const sockaddr*>(a.Data());
    salen = static_cast<socklen_t>(a.ByteLength());
  }
  ssize_t n;
  do n = sendto(fd, data.Data(), data.ByteLength(), MSG_NOSIGNAL, sa, salen); while (n < 0 && errno == EINTR);
  if (n < 0) throw ErrnoError(env, errno, "sendto");
  return Napi::Number::New(env, static_cast<double>(n));
}

// recv(fd, buf, timeoutMs, sockaddrOut|null) -> bytes received, or -1 when nothing arrived within timeoutMs.
// The real datagram length is returned (MSG_TRUNC); a value above buf.length means the datagram was cut.
Napi::Value Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  Napi::Uint8Array buf = BytesArg(info, 1, "buffer");
  int timeout = IntArg(info, 2, "timeoutMs");
  if (timeout < 0 || timeout > 10000) throw Napi::RangeError::New(env, "timeoutMs must be within 0..10000");
  sockaddr_storage ss;
  socklen_t sslen = sizeof ss;
  Napi::Uint8Array out;
  if (info.Length() > 3 && !info[3].IsNull() && !info[3].IsUndefined()) out = BytesArg(info, 3, "sockaddrOut");
  pollfd p{fd, POLLIN, 0};
  int r;
  do r = poll(&p, 1, timeout); while (r < 0 && errno == EINTR);
  if (r < 0) throw ErrnoError(env, errno, "poll");
  if (r == 0) return Napi::Number::New(env, -1);
  ssize_t n;
  do n = recvfrom(fd, buf.Data(), buf.ByteLength(), MSG_DONTWAIT | MSG_TRUNC, reinterpret_cast<sockaddr*>(&ss), &sslen);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    throw ErrnoError(env, errno, "recvfrom");
  }
  if (!out.IsEmpty()) {
    size_t k = std::min(static_cast<size_t>(sslen), out.ByteLength());
    memcpy(out.Data(), &ss, k);
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// bind(fd, sockaddr)
Napi::Value Bind(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0, "fd");
  Napi::Uint8Array a = BytesArg(info, 1, "sockaddr");
  if (bind(fd, reinterpret_cast<const sockaddr*>(a.Data()), static_cast<socklen_t>(a.ByteLength())) != 0)
    throw ErrnoError(info.Env(), errno, "bind");
  return info.Env().Undefined();
}

// setsockopt(fd, level, name, int|bytes)
Napi::Value SetSockOpt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd"), level = IntArg(info, 1, "level"), name = IntArg(info, 2, "name");
  int r;
  if (info.Length() > 3 && info[3].IsNumber()) {
    int v = info[3].As<Napi::Number>().Int32Value();
    r = setsockopt(fd, level, name, &v, sizeof v);
  } else {
    Napi::Uint8Array b = BytesArg(info, 3, "value");
    r = setsockopt(fd, level, name, b.Data(), static_cast<socklen_t>(b.ByteLength()));
  }
  if (r != 0) throw ErrnoError(env, errno, "setsockopt");
  return env.Undefined();
}

// socketNetnsInode(fd) -> inode number of the namespace the socket belongs to (SIOCGSKNS); for checks and tests.
Napi::Value SocketNetnsInode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  int ns = ioctl(fd, SIOCGSKNS);
  if (ns < 0) throw ErrnoError(env, errno, "ioctl(SIOCGSKNS)");
  struct stat st;
  int r = fstat(ns, &st), err = errno;
  close(ns);
  if (r != 0) throw ErrnoError(env, err, "fstat");
  return Napi::Number::New(env, static_cast<double>(st.st_ino));
}

bool SafeSysctlPath(const std::string& p) {
  return p.rfind("/proc/sys/", 0) == 0 && p.find("..") == std::string::npos && p.find('\0') == std::string::npos;
}

// sysctlWrite(netnsPath|null, "/proc/sys/net/...", value)
Napi::Value SysctlWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = NsArg(info, 0);
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsString())
    throw Napi::TypeError::New(env, "sysctlWrite(netns, file, value): file and value must be strings");
  std::string file = info[1].As<Napi::String>().Utf8Value(), value = info[2].As<Napi::String>().Utf8Value();
  if (!SafeSysctlPath(file)) throw Napi::TypeError::New(env, "sysctl file must be under /proc/sys/: " + file);
  int fd, err = 0;
  {
    koa::NsGuard g(ns.c_str());
    if (!g.ok()) ThrowGuard(env, g, ns);
    fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);  // opened inside the namespace: the file is bound to it
    if (fd < 0) err = errno;
  }
  if (fd < 0) throw ErrnoError(env, err, "open", file);
  ssize_t n = write(fd, value.data(), value.size());
  err = errno;
  close(fd);
  if (n < 0) throw ErrnoError(env, err, "write", file);
  return env.Undefined();
}

// sysctlRead(netnsPath|null, "/proc/sys/net/...") -> string (trailing newline removed)
Napi::Value SysctlRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = NsArg(info, 0);
  if (info.Length() < 2 || !info[1].IsString()) throw Napi::TypeError::New(env, "file must be a string");
  std::string file = info[1].As<Napi::String>().Utf8Value();
  if (!SafeSysctlPath(file)) throw Napi::TypeError::New(env, "sysctl file must be under /proc/sys/: " + file);
  int fd, err = 0;
  {
    koa::NsGuard g(ns.c_str());
    if (!g.ok()) ThrowGuard(env, g, ns);
    fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) err = errno;
  }
  if (fd < 0) throw ErrnoError(env, err, "open", file);
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  err = errno;
  close(fd);
  if (n < 0) throw ErrnoError(env, err, "read", file);
  while (n > 0 && buf[n - 1] == '\n') n--;
  return Napi::String::New(env, buf, static_cast<size_t>(n));
}

// ethtoolValue(netnsPath|null, ifname, cmd, data) -> data after the ioctl (legacy SIOCETHTOOL, struct ethtool_value).
// ETHTOOL_STXCSUM with data 0 turns TX checksum offload off; ETHTOOL_GTXCSUM reads it.
Napi::Value EthtoolValue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = NsArg(info, 0);
  if (info.Length() < 2 || !info[1].IsString()) throw Napi::TypeError::New(env, "ifname must be a string");
  std::string ifname = info[1].As<Napi::String>().Utf8Value();
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) throw Napi::RangeError::New(env, "invalid interface name: " + ifname);
  int cmd = IntArg(info, 2, "cmd"), data = IntArg(info, 3, "data");
  int fd, err = 0;
  {
    koa::NsGuard g(ns.c_str());
    if (!g.ok()) ThrowGuard(env, g, ns);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);  // the ioctl resolves ifname in the socket's namespace
    if (fd < 0) err = errno;
  }
  if (fd < 0) throw ErrnoError(env, err, "socket");
  ethtool_value ev{};
  ev.cmd = static_cast<__u32>(cmd);
  ev.data = static_cast<__u32>(data);
  ifreq ifr{};
  memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
  ifr.ifr_data = reinterpret_cast<char*>(&ev);
  int r = ioctl(fd, SIOCETHTOOL, &ifr);
  err = errno;
  close(fd);
  if (r != 0) throw ErrnoError(env, err, "ioctl(SIOCETHTOOL)", ifname);
  return Napi::Number::New(env, ev.data);
}


// ---- work on the libuv thread pool -------------------------------------------------------------------------------

// Resolves or rejects a promise from a pool job: the job fills err/syscall/detail, or its result in OnResult.
class PoolJob : public Napi::AsyncWorker {
 public:
  explicit PoolJob(Napi::Env env, const char* name) : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual Napi::Value Result(Napi::Env env) = 0;
  void Fail(int err, const char* syscall, const std::string& detail = "") { err_ = err; syscall_ = syscall; detail_ = detail; }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) deferred_.Reject(ErrnoError(env, err_, syscall_, detail_).Value());
    else deferred_.Resolve(Result(env));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int err_ = 0;
  const char* syscall_ = "";
  std::string detail_;
};

constexpr size_t kRecvSize = 64 * 1024;
constexpr uint16_t kNlmsgError = 2, kNlmsgDone = 3, kNlmsgOverrun = 4, kNlmFMulti = 2;

// exchange(fd, request, seq, mode, timeoutMs) -> Promise<Buffer[]>: sends one netlink request and receives datagrams
// until the answer for `seq` is complete, on a pool thread. mode 0 = ack (an NLMSG_ERROR), 1 = get (any message),
// 2 = dump (NLMSG_DONE, an error, or an overrun); an empty request sends nothing (receive only). Resolves with every datagram read (the caller parses them; stale
// answers to earlier requests may be among them); when the deadline passes first, with what arrived so far.
class ExchangeJob : public PoolJob {
 public:
  ExchangeJob(Napi::Env env, int fd, const uint8_t* msg, size_t len, uint32_t seq, int mode, int timeoutMs)
      : PoolJob(env, "koaNetlinkExchange"), fd_(fd), msg_(msg, msg + len), seq_(seq), mode_(mode), timeout_(timeoutMs) {}

 protected:
  void Execute() override {
    ssize_t n;
    if (!msg_.empty()) {  // empty: the request went inline, only the rest of its answer is awaited here
      do n = sendto(fd_, msg_.data(), msg_.size(), MSG_NOSIGNAL, nullptr, 0); while (n < 0 && errno == EINTR);
      if (n < 0) return Fail(errno, "sendto");
    }
    timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    std::vector<uint8_t> buf(kRecvSize);
    for (;;) {
      timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
      int left = timeout_ - static_cast<int>(spent);
      if (left < 0) return;  // timed out: the caller sees an incomplete answer
      pollfd p{fd_, POLLIN, 0};
      int r;
      do r = poll(&p, 1, left); while (r < 0 && errno == EINTR);
      if (r < 0) return Fail(errno, "poll");
      if (r == 0) return;
      do n = recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC); while (n < 0 && errno == EINTR);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
        return Fail(errno, "recvfrom");
      }
      if (static_cast<size_t>(n) > buf.size()) return Fail(EMSGSIZE, "recvfrom", "netlink datagram truncated");
      got_.emplace_back(buf.begin(), buf.begin() + n);
      if (Complete(buf.data(), static_cast<size_t>(n))) return;
    }
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Array out = Napi::Array::New(env, got_.size());
    for (size_t i = 0; i < got_.size(); i++) out.Set(i, Napi::Buffer<uint8_t>::Copy(env, got_[i].data(), got_[i].size()));
    return out;
  }

 private:
  bool Complete(const uint8_t* p, size_t len) const {
    size_t off = 0;
    while (off + 16 <= len) {
      uint32_t mlen;
      uint16_t type, flags;
      uint32_t seq;
      memcpy(&mlen, p + off, 4);
      memcpy(&type, p + off + 4, 2);
      memcpy(&flags, p + off + 6, 2);
      memcpy(&seq, p + off + 8, 4);
      if (mlen < 16 || off + mlen > len) return true;  // malformed: let the parser report it
      if (seq == seq_) {
        if (mode_ == 0 && type == kNlmsgError) return true;
        if (mode_ == 1) return true;
        if (mode_ == 2) {
          if (type == kNlmsgDone || type == kNlmsgOverrun) return true;
          if (type == kNlmsgError && mlen >= 20) {
            int32_t e;
            memcpy(&e, p + off + 16, 4);
            if (e != 0) return true;
          }
          (void)flags;
        }
      }
      off += (mlen + 3) & ~3u;
    }
    return false;
  }

  int fd_;
  std::vector<uint8_t> msg_;
  uint32_t seq_;
  int mode_;
  int timeout_;
  std::vector<std::vector<uint8_t>> got_;
};

Napi::Value Exchange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  Napi::Uint8Array msg = BytesArg(info, 1, "request");
  if (info.Length() < 3 || !info[2].IsNumber()) throw Napi::TypeError::New(env, "seq must be a number");
  uint32_t seq = info[2].As<Napi::Number>().Uint32Value();
  int mode = IntArg(info, 3, "mode"), timeout = IntArg(info, 4, "timeoutMs");
  if (mode < 0 || mode > 2) throw Napi::RangeError::New(env, "mode must be 0 (ack), 1 (get) or 2 (dump)");
  if (timeout < 0 || timeout > 60000) throw Napi::RangeError::New(env, "timeoutMs must be within 0..60000");
  auto* job = new ExchangeJob(env, fd, msg.Data(), msg.ByteLength(), seq, mode, timeout);
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

// sysctl / ethtool in a namespace on a pool thread: the worker switches into the namespace and back (NsGuard).
class NsJob : public PoolJob {
 public:
  enum Kind { kSysctlWrite, kSysctlRead, kEthtool };
  NsJob(Napi::Env env, Kind k, std::string ns, std::string a, std::string b, int cmd = 0, int data = 0)
      : PoolJob(env, "koaNetnsJob"), kind_(k), ns_(std::move(ns)), a_(std::move(a)), b_(std::move(b)), cmd_(cmd), data_(data) {}

 protected:
  void Execute() override {
    int fd, err = 0;
    {
      koa::NsGuard g(ns_.c_str());
      if (!g.ok()) return Fail(g.err(), g.step(), ns_);
      if (kind_ == kEthtool) fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      else fd = open(a_.c_str(), (kind_ == kSysctlWrite ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
      if (fd < 0) err = errno;
    }
    if (fd < 0) return Fail(err, kind_ == kEthtool ? "socket" : "open", a_);
    if (kind_ == kSysctlWrite) {
      ssize_t n = write(fd, b_.data(), b_.size());
      err = errno;
      close(fd);
      if (n < 0) Fail(err, "write", a_);
    } else if (kind_ == kSysctlRead) {
      char buf[4096];
      ssize_t n = read(fd, buf, sizeof buf);
      err = errno;
      close(fd);
      if (n < 0) return Fail(err, "read", a_);
      while (n > 0 && buf[n - 1] == '\n') n--;
      text_.assign(buf, static_cast<size_t>(n));
    } else {
      ethtool_value ev{};
      ev.cmd = static_cast<__u32>(cmd_);
      ev.data = static_cast<__u32>(data_);
      ifreq ifr{};
      memcpy(ifr.ifr_name, a_.c_str(), a_.size());
      ifr.ifr_data = reinterpret_cast<char*>(&ev);
      int r = ioctl(fd, SIOCETHTOOL, &ifr);
      err = errno;
      close(fd);
      if (r != 0) return Fail(err, "ioctl(SIOCETHTOOL)", a_);
      data_ = static_cast<int>(ev.data);
    }
  }
  Napi::Value Result(Napi::Env env) override {
    if (kind_ == kSysctlRead) return Napi::String::New(env, text_);
    if (kind_ == kEthtool) return Napi::Number::New(env, static_cast<uint32_t>(data_));
    return env.Undefined();
  }

 private:
  Kind kind_;
  std::string ns_, a_, b_, text_;
  int cmd_, data_;
};

Napi::Value Queue(NsJob* job) {
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

// sysctlWriteAsync(netnsPath|null, file, value) -> Promise<void>
Napi::Value SysctlWriteAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = NsArg(info, 0);
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsString())
    throw Napi::TypeError::New(env, "sysctlWriteAsync(netns, file, value): file and value must be strings");
  std::string file = info[1].As<Napi::String>().Utf8Value();
  if (!SafeSysctlPath(file)) throw Napi::TypeError::New(env, "sysctl file must be under /proc/sys/: " + file);
  return Queue(new NsJob(env, NsJob::kSysctlWrite, ns, file, info[2].As<Napi::String>().Utf8Value()));
}

// sysctlReadAsync(netnsPath|null, file) -> Promise<string>
Napi::Value SysctlReadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = NsArg(info, 0);
  if (info.Length() < 2 || !info[1].IsString()) throw Napi::TypeError::New(env, "file must be a string");
  std::string file = info[1].As<Napi::String>().Utf8Value();
  if (!SafeSysctlPath(file)) throw Napi::TypeError::New(env, "sysctl file must be under /proc/sys/: " + file);
  return Queue(new NsJob(env, NsJob::kSysctlRead, ns, file, ""));
}

// ethtoolValueAsync(netnsPath|null, ifname, cmd, data) -> Promise<number>
Napi::Value EthtoolValueAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ns = NsArg(info, 0);
  if (info.Length() < 2 || !info[1].IsString()) throw Napi::TypeError::New(env, "ifname must be a string");
  std::string ifname = info[1].As<Napi::String>().Utf8Value();
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) throw Napi::RangeError::New(env, "invalid interface name: " + ifname);
  int cmd = IntArg(info, 2, "cmd"), data = IntArg(info, 3, "data");
  return Queue(new NsJob(env, NsJob::kEthtool, ns, ifname, "", cmd, data));
}

// ---- readability as an event on the loop --------------------------------------------------------------------------

// new Poller(fd, callback): callback(errorCodeOrNull) runs on the loop whenever fd is readable (level-triggered:
// the callback must drain the socket with non-blocking recv). start()/stop() arm and disarm; close() releases the
// uv handle (the fd stays the caller's to close, after close()). While armed the Poller keeps itself alive.
class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller", {InstanceMethod("start", &Poller::Start), InstanceMethod("stop", &Poller::Stop),
                                       InstanceMethod("close", &Poller::Close)});
  }

  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info), ctx_(info.Env(), "koaPoller") {
    Napi::Env env = info.Env();
    int fd = IntArg(info, 0, "fd");
    if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    cb_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no libuv loop");
    handle_ = new uv_poll_t;
    int r = uv_poll_init(loop, handle_, fd);
    if (r != 0) {
      delete handle_;
      handle_ = nullptr;
      throw ErrnoError(env, -r, "uv_poll_init");
    }
    handle_->data = this;
  }

  ~Poller() override { Release(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!handle_) throw Napi::Error::New(info.Env(), "poller is closed");
    int r = uv_poll_start(handle_, UV_READABLE, OnReadable);
    if (r != 0) throw ErrnoError(info.Env(), -r, "uv_poll_start");
    if (!armed_) { Ref(); armed_ = true; }
    return info.Env().Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_) uv_poll_stop(handle_);
    if (armed_) { armed_ = false; Unref(); }
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop(info);
    Release();
    return info.Env().Undefined();
  }
  void Release() {
    if (!handle_) return;
    uv_poll_stop(handle_);
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }
  static void OnReadable(uv_poll_t* h, int status, int) {
    auto* self = static_cast<Poller*>(h->data);
    if (!self) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Value arg = env.Null();
    if (status < 0) {
      const char* name = uv_err_name(status);
      arg = Napi::String::New(env, name ? name : "EUNKNOWN");
    }
    try {
      self->cb_.MakeCallback(env.Global(), {arg}, self->ctx_);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());  // the JS side never throws here; if it did, it is an uncaught exception
    }
  }

  Napi::FunctionReference cb_;
  Napi::AsyncContext ctx_;
  uv_poll_t* handle_ = nullptr;
  bool armed_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("socketInNetns", Napi::Function::New(env, SocketInNetns));
  exports.Set("openNetns", Napi::Function::New(env, OpenNetns));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("sendto", Napi::Function::New(env, SendTo));
  exports.Set("recv", Napi::Function::New(env, Recv));
  exports.Set("bind", Napi::Function::New(env, Bind));
  exports.Set("setsockopt", Napi::Function::New(env, SetSockOpt));
  exports.Set("socketNetnsInode", Napi::Function::New(env, SocketNetnsInode));
  exports.Set("sysctlWrite", Napi::Function::New(env, SysctlWrite));
  exports.Set("sysctlRead", Napi::Function::New(env, SysctlRead));
  exports.Set("ethtoolValue", Napi::Function::New(env, EthtoolValue));
  exports.Set("exchange", Napi::Function::New(env, Exchange));
  exports.Set("sysctlWriteAsync", Napi::Function::New(env, SysctlWriteAsync));
  exports.Set("sysctlReadAsync", Napi::Function::New(env, SysctlReadAsync));
  exports.Set("ethtoolValueAsync", Napi::Function::New(env, EthtoolValueAsync));
  exports.Set("Poller", Poller::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(koa_native, Init)
