// koa_native: the few things Node cannot do itself, all synchronous.
//
//  - sockets opened inside a network namespace given by a path (netlink, packet, raw/ICMP), returned as plain fds;
//  - sendto/recv/bind/setsockopt/close on those fds (addresses are sockaddr bytes built by the TypeScript side);
//  - a namespace file opened as an fd (for IFLA_NET_NS_FD);
//  - a sysctl write/read inside a namespace (/proc/sys/net reflects the namespace of the thread that opens it);
//  - the legacy SIOCETHTOOL get/set of one ethtool_value inside a namespace (TX checksum offload).
//
// Nothing here ever yields while switched: every function enters, does its syscalls and leaves (NsGuard).
// Errors are JS Errors with `code` (errno name, e.g. "ENOENT"), `errno` (number) and `syscall`.
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
  return exports;
}

}  // namespace

NODE_API_MODULE(koa_native, Init)
