/*
 * kube-ovn: the CNI executable of kube-ovn-node-agent. It forwards the CNI call (the CNI_* environment and stdin,
 * verbatim) to the agent over its Unix socket, prints the agent's answer and exits with the agent's status. All
 * CNI logic lives in the agent; this program only finds the socket (`server_socket` in the netconf, or in its
 * `ipam` object in IPAM-only mode), answers VERSION, and when the agent cannot be reached fails with CNI code 11
 * (ADD/CHECK/STATUS/GC) or, for DEL, records the call in the delete queue for the agent to finish (it drains the
 * queue at start and whenever a file appears in it).
 *
 * Wire: POST /cni/v1/call, body {"env":{"CNI_...":"..."},"stdin":"..."}; answer: body = bytes to print, header
 * x-cni-exit-status = exit status. Environment for tests: KOA_DEL_QUEUE_DIR, KOA_CNI_TIMEOUT_MS, KOA_SHIM_STATE_DIR.
 *
 * Own wall time: after the answer is written, the shim appends one line "<COMMAND> <ms> <CNI code>" to a small state
 * file per agent socket (<socket>.shim-last, e.g. /run/openvswitch/kube-ovn-daemon.sock.shim-last; or
 * <KOA_SHIM_STATE_DIR>/shim-last.<FNV-1a 64 of the socket path>; O_APPEND, no fsync: these are metrics). The next
 * call takes the file atomically (rename) and sends up to 16 reports as "shim_prev" in its body. Each report is
 * delivered at most once (one racing append into a file just taken may be lost). Only lines that parse are
 * re-rendered, so a corrupt state file cannot break a call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_STDIN (1 << 20)
#define MAX_ANSWER (8 << 20)
#define CONNECT_MS 2000
#define TOTAL_MS 110000 /* below kubelet's 2 min runtime request timeout */
#define DEFAULT_SOCKET "/run/openvswitch/kube-ovn-daemon.sock"
#define DEFAULT_QUEUE "/run/openvswitch/kube-ovn-del-queue"
#define VERSIONS "[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"

extern char **environ;

struct buf { char *p; size_t n, cap; };
static char version[16] = "1.1.0"; /* cniVersion for our own error replies */

static void put(struct buf *b, const void *s, size_t n) {
	if (b->n + n + 1 > b->cap) {
		size_t c = b->cap ? b->cap : 4096;
		while (c < b->n + n + 1) c *= 2;
		char *p = realloc(b->p, c);
		if (!p) { fputs("kube-ovn: out of memory\n", stderr); _exit(1); }
		b->p = p, b->cap = c;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}
static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* Appends s as a JSON string literal. */
static void put_json(struct buf *b, const char *s, size_t n) {
	static const char hex[] = "0123456789abcdef";
	put(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') continue;
		put(b, s + run, i - run);
		run = i + 1;
		char e[7] = {'\\', (char)c, 0};
		if (c < 0x20) e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15], e[6] = 0;
		puts_(b, e);
	}
	put(b, s + run, n - run);
	put(b, "\"", 1);
}

static void save_report(int code);

/* Prints a CNI error and exits 1. */
static void fail(int code, const char *fmt, ...) {
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct buf b = {0};
	puts_(&b, "{\"cniVersion\":");
	put_json(&b, version, strlen(version));
	char c[32];
	snprintf(c, sizeof c, ",\"code\":%d,\"msg\":", code);
	puts_(&b, c);
	put_json(&b, msg, strlen(msg));
	puts_(&b, "}\n");
	if (write(1, b.p, b.n) < 0) _exit(1);
	save_report(code);
	exit(1);
}

/* ---- minimal JSON walking: only to find a few string values at known places ---- */
static const char *ws(const char *p, const char *e) {
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
	return p;
}
static const char *skip_str(const char *p, const char *e) { /* p at opening quote */
	for (p++; p < e; p++) {
		if (*p == '\\') p++;
		else if (*p == '"') return p + 1;
	}
	return NULL;
}
static const char *skip_val(const char *p, const char *e, int depth) {
	p = ws(p, e);
	if (p >= e || depth > 64) return NULL;
	if (*p == '"') return skip_str(p, e);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		p = ws(p + 1, e);
		if (p < e && *p == close) return p + 1;
		for (;;) {
			if (close == '}') {
				if (p >= e || *p != '"' || !(p = skip_str(p, e))) return NULL;
				p = ws(p, e);
				if (p >= e || *p++ != ':') return NULL;
			}
			if (!(p = skip_val(p, e, depth + 1))) return NULL;
			p = ws(p, e);
			if (p < e && *p == ',') { p = ws(p + 1, e); continue; }
			return p < e && *p == close ? p + 1 : NULL;
		}
	}
	while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') p++;
	return p;
}
static int hexval(const char *p, const char *e) {
	int v = 0;
	for (int i = 0; i < 4; i++) {
		if (p + i >= e) return -1;
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0) return -1;
		v = v * 16 + d;
	}
	return v;
}
/* Copies the JSON string at p into out, decoding every escape (\u followed by four hex digits, and surrogate pairs to UTF-8, as the agent's
 * JSON.parse does: a socket path written "\u002frun/..." is the same path). Returns 0, or -1 when it is not a
 * complete string, does not fit, or decodes to a NUL (no path can hold one). */
static int get_str(const char *p, const char *e, char *out, size_t cap) {
	size_t n = 0;
	if (p >= e || *p != '"') return -1;
	for (p++; p < e && *p != '"'; p++) {
		unsigned char u8[4];
		size_t k = 1;
		u8[0] = (unsigned char)*p;
		if (*p == '\\') {
			if (++p >= e) return -1;
			switch (*p) {
			case 'n': u8[0] = '\n'; break;
			case 't': u8[0] = '\t'; break;
			case 'r': u8[0] = '\r'; break;
			case 'b': u8[0] = '\b'; break;
			case 'f': u8[0] = '\f'; break;
			case '"': case '\\': case '/': u8[0] = (unsigned char)*p; break;
			case 'u': {
				long cp = hexval(p + 1, e);
				if (cp < 0) return -1;
				p += 4;
				if (cp >= 0xd800 && cp <= 0xdbff) { /* a high surrogate must be followed by \u + a low one */
					long lo = p + 2 < e && p[1] == '\\' && p[2] == 'u' ? hexval(p + 3, e) : -1;
					if (lo < 0xdc00 || lo > 0xdfff) return -1;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				} else if (cp >= 0xdc00 && cp <= 0xdfff) return -1;
				if (cp == 0) return -1;
				if (cp < 0x80) u8[0] = (unsigned char)cp;
				else if (cp < 0x800) u8[0] = (unsigned char)(0xc0 | cp >> 6), u8[1] = (unsigned char)(0x80 | (cp & 0x3f)), k = 2;
				else if (cp < 0x10000) u8[0] = (unsigned char)(0xe0 | cp >> 12), u8[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), u8[2] = (unsigned char)(0x80 | (cp & 0x3f)), k = 3;
				else u8[0] = (unsigned char)(0xf0 | cp >> 18), u8[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)), u8[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), u8[3] = (unsigned char)(0x80 | (cp & 0x3f)), k = 4;
				break;
			}
			default: return -1;
			}
		}
		if (n + k >= cap) return -1;
		memcpy(out + n, u8, k);
		n += k;
	}
	out[n] = 0;
	return p < e ? 0 : -1;
}
/* What scan found for a key (the last occurrence wins, as in JSON.parse). */
enum { K_ABSENT = 0, K_STRING, K_NULL, K_NOT_STRING, K_UNDECODABLE };
/* Walks one object; for each key in `keys` copies a string value into vals[i] and records in st[i] what the value
 * was. Returns the position of the value of key `sub` if that is an object, in *subp. */
static int scan(const char *p, const char *e, const char **keys, char **vals, const size_t *caps, int *st, const char *sub, const char **subp) {
	p = ws(p, e);
	if (p >= e || *p != '{') return -1;
	p = ws(p + 1, e);
	if (p < e && *p == '}') return 0;
	for (;;) {
		if (p >= e || *p != '"') return -1;
		const char *k = p + 1, *ke = skip_str(p, e);
		if (!ke) return -1;
		size_t kl = (size_t)(ke - 1 - k);
		p = ws(ke, e);
		if (p >= e || *p++ != ':') return -1;
		p = ws(p, e);
		for (int i = 0; keys[i]; i++) {
			if (strlen(keys[i]) != kl || memcmp(k, keys[i], kl) || p >= e) continue;
			vals[i][0] = 0;
			if (*p != '"') st[i] = e - p >= 4 && !memcmp(p, "null", 4) ? K_NULL : K_NOT_STRING;
			else if (get_str(p, e, vals[i], caps[i])) vals[i][0] = 0, st[i] = K_UNDECODABLE;
			else st[i] = K_STRING;
		}
		if (sub && strlen(sub) == kl && !memcmp(k, sub, kl) && *p == '{') *subp = p;
		if (!(p = skip_val(p, e, 1))) return -1;
		p = ws(p, e);
		if (p < e && *p == ',') { p = ws(p + 1, e); continue; }
		return p < e && *p == '}' ? 0 : -1;
	}
}

/* ---- transport ---- */
static long long now_ms(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}
static int wait_fd(int fd, short ev, long long deadline) {
	struct pollfd p = {fd, ev, 0};
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) return errno = ETIMEDOUT, -1;
		int r = poll(&p, 1, (int)left);
		if (r > 0) return 0;
		if (r < 0 && errno != EINTR) return -1;
	}
}

/* Connects to the socket: -1 (errno set) when nobody is listening. */
static int dial(const char *path, long long deadline) {
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) return -1;
	while (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		if ((errno != EAGAIN && errno != EINTR) || now_ms() >= deadline) { int e = errno; close(fd); errno = e == EAGAIN ? ETIMEDOUT : e; return -1; }
		usleep(2000); /* listen backlog full: the agent is alive but busy */
	}
	return fd;
}

/* Sends the request and reads the whole answer (Connection: close). Returns 0, or -1 with errno. */
static int exchange(int fd, const struct buf *req, struct buf *ans, long long deadline) {
	for (size_t off = 0; off < req->n;) {
		ssize_t w = send(fd, req->p + off, req->n - off, MSG_NOSIGNAL);
		if (w > 0) { off += (size_t)w; continue; }
		if (w < 0 && errno != EAGAIN && errno != EINTR) return -1;
		if (wait_fd(fd, POLLOUT, deadline)) return -1;
	}
	char tmp[16384];
	for (;;) {
		ssize_t r = recv(fd, tmp, sizeof tmp, 0);
		if (r > 0) {
			if (ans->n + (size_t)r > MAX_ANSWER) return errno = EMSGSIZE, -1;
			put(ans, tmp, (size_t)r);
			continue;
		}
		/* end of stream: the answer, or nothing at all when the agent closed the connection without answering (it
		 * read the call and exited, e.g. killed mid-call): that is no answer (EPIPE), so a DEL is queued, as when the
		 * connection is reset (the agent had not read the call yet) */
		if (r == 0) return ans->n ? 0 : (errno = EPIPE, -1);
		if (errno != EAGAIN && errno != EINTR) return -1;
		if (wait_fd(fd, POLLIN, deadline)) return -1;
	}
}

/* ---- delete queue ---- */
static int mkdirs(char *dir) {
	for (char *s = dir + 1; *s; s++)
		if (*s == '/') { *s = 0; if (mkdir(dir, 0700) && errno != EEXIST) return -1; *s = '/'; }
	return mkdir(dir, 0700) && errno != EEXIST ? -1 : 0;
}
/* A name usable as is in a file name: the agent's container-ID rule (cid) or no '/', NUL, control bytes (ifname). */
static int plain_name(const char *s, int cid) {
	if (!*s || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (cid && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || (p > (const unsigned char *)s && strchr("_.-", *p)))) return 0;
		if (!cid && (*p == '/' || *p == ':' || *p <= ' ' || *p == 0x7f)) return 0;
	}
	return 1;
}
static unsigned long long fnv1a(unsigned long long h, const char *s, size_t n) {
	for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}
/* The queue file of (container ID, ifname): `<cid>-<ifname>.json` when both are plain and short (ADD accepts
 * container IDs of any length, a file name is at most 255 bytes), else `<cid[0:64]>-h<FNV-1a 64 of cid NUL ifname>.json`
 * (`h` + 16 hex digits; the agent's drain reads every `*.json`, whatever its name: the call is in the file). */
static void queue_name(char *out, size_t cap, const char *cid, const char *ifn) {
	size_t a = strlen(cid), b = strlen(ifn);
	if (plain_name(cid, 1) && plain_name(ifn, 0) && a + b <= 200 && a + b + 2 <= cap) {
		memcpy(out, cid, a), out[a] = '-', memcpy(out + a + 1, ifn, b), out[a + 1 + b] = 0;
		return;
	}
	unsigned long long h = fnv1a(0xcbf29ce484222325ULL, cid, strlen(cid) + 1);
	h = fnv1a(h, ifn, strlen(ifn));
	char pre[65];
	size_t n = 0;
	for (const char *p = cid; *p && n < 64; p++)
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) pre[n++] = *p;
	pre[n] = 0;
	snprintf(out, cap, "%s-h%016llx", pre, h);
}
/* Writes the forwarded call to <dir>/<queue_name>.json atomically (tmp + fsync + rename + fsync dir). */
static int enqueue(const struct buf *body, const char *cid, const char *ifn, char *err, size_t errcap) {
	const char *q = getenv("KOA_DEL_QUEUE_DIR");
	char dir[512], name[300], tmp[900], dst[900];
	snprintf(dir, sizeof dir, "%s", q && *q ? q : DEFAULT_QUEUE);
	queue_name(name, sizeof name, cid, ifn);
	snprintf(dst, sizeof dst, "%s/%s.json", dir, name);
	snprintf(tmp, sizeof tmp, "%s/.%s.%d.tmp", dir, name, (int)getpid());
	int fd = -1;
	if (mkdirs(dir) || (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) goto bad;
	for (size_t off = 0; off < body->n;) {
		ssize_t w = write(fd, body->p + off, body->n - off);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) goto bad;
		off += (size_t)w;
	}
	if (fsync(fd) || close(fd)) { fd = -1; goto bad; }
	fd = -1;
	if (rename(tmp, dst)) goto bad;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) { fsync(fd); close(fd); }
	return 0;
bad:
	snprintf(err, errcap, "%s: %s", dst, strerror(errno));
	if (fd >= 0) close(fd);
	unlink(tmp);
	return -1;
}

/* ---- shim-observed time (see the top of this file) ---- */
#define MAX_REPORTS 16
struct report { char cmd[8]; double ms; int code; };
static struct timespec t_start;
static const char *r_cmd; /* set once the call is being forwarded */
static char r_dir[512], r_path[600];

static double elapsed_ms(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t_start.tv_sec) * 1e3 + (double)(t.tv_nsec - t_start.tv_nsec) / 1e6;
}
/* <socket path>.shim-last, next to the agent's socket (one file per socket; it goes away with a test's temp dir);
 * or <KOA_SHIM_STATE_DIR>/shim-last.<FNV-1a 64 of the socket path> */
static int r_mkdir;
static void state_path(const char *sock) {
	const char *s = getenv("KOA_SHIM_STATE_DIR");
	if (s && *s) {
		unsigned long long h = 0xcbf29ce484222325ULL;
		for (const unsigned char *p = (const unsigned char *)sock; *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
		snprintf(r_dir, sizeof r_dir, "%s", s);
		snprintf(r_path, sizeof r_path, "%s/shim-last.%016llx", r_dir, h);
		r_mkdir = 1;
	} else {
		snprintf(r_path, sizeof r_path, "%s.shim-last", sock);
		r_mkdir = 0; /* the socket's directory belongs to the agent (or OVS): never created here */
	}
}
static int known_cmd(const char *c) {
	return !strcmp(c, "ADD") || !strcmp(c, "DEL") || !strcmp(c, "CHECK") || !strcmp(c, "STATUS") || !strcmp(c, "GC");
}
/* Takes the state file for this process (rename: at most one taker) and parses its complete lines
 * "<COMMAND> <ms> <code>\n" (strtod/strtol, not sscanf: an out-of-range %d is undefined behaviour). */
static int claim(struct report *r, int max) {
	char mine[700];
	snprintf(mine, sizeof mine, "%s.%d.claim", r_path, (int)getpid());
	if (rename(r_path, mine)) return 0;
	int fd = open(mine, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	unlink(mine);
	if (fd < 0) return 0;
	char b[4096];
	ssize_t n = read(fd, b, sizeof b - 1);
	close(fd);
	if (n <= 0) return 0;
	b[n] = 0;
	int k = 0;
	for (char *l = b, *e; k < max && (e = strchr(l, '\n')); l = e + 1) {
		*e = 0;
		struct report x = {0};
		char *sp = strchr(l, ' '), *end;
		if (!sp || sp - l >= (long)sizeof x.cmd || sp[1] < '0' || sp[1] > '9') continue;
		memcpy(x.cmd, l, (size_t)(sp - l));
		x.ms = strtod(sp + 1, &end);
		if (*end != ' ' || !(end[1] == '-' || (end[1] >= '0' && end[1] <= '9'))) continue;
		errno = 0;
		long code = strtol(end + 1, &end, 10);
		if (errno || *end || code < -1 || code >= 1000) continue;
		x.code = (int)code;
		if (known_cmd(x.cmd) && isfinite(x.ms) && x.ms >= 0 && x.ms <= 3600000) r[k++] = x;
	}
	return k;
}
/* Appends ,"shim_prev":[...] for the reports left by earlier calls on this socket. */
static void put_prev(struct buf *b) {
	struct report r[MAX_REPORTS];
	int n = claim(r, MAX_REPORTS);
	if (!n) return;
	puts_(b, ",\"shim_prev\":[");
	for (int i = 0; i < n; i++) {
		char e[480], res[16];
		if (r[i].code == 0) snprintf(res, sizeof res, "ok");
		else if (r[i].code < 0) snprintf(res, sizeof res, "error");
		else snprintf(res, sizeof res, "cni_%d", r[i].code);
		snprintf(e, sizeof e, "%s{\"command\":\"%.7s\",\"ms\":%.3f,\"result\":\"%s\"}", i ? "," : "", r[i].cmd, r[i].ms, res);
		puts_(b, e);
	}
	puts_(b, "]");
}
/* Records this call (code: 0 ok, CNI code, -1 unknown failure) after its answer is out: one O_APPEND write of one
 * short line (atomic between concurrent shims; no rename, no fsync). Best effort, silent. */
static void save_report(int code) {
	if (!r_cmd) return;
	char l[448]; /* ms is finite and small; the size only quiets -Wformat-truncation */
	int n = snprintf(l, sizeof l, "%.7s %.3f %d\n", r_cmd, elapsed_ms(), code);
	r_cmd = NULL; /* once */
	int fd = open(r_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == ENOENT && r_mkdir && !mkdirs(r_dir)) fd = open(r_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) return;
	if (write(fd, l, (size_t)n) < 0) { /* nothing to do: metrics only */ }
	close(fd);
}

int main(void) {
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	const char *cmd = getenv("CNI_COMMAND");
	if (!cmd || !*cmd) {
		fputs("CNI kube-ovn plugin (kube-ovn-node-agent)\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n", stderr);
		return 0;
	}
	if (!strcmp(cmd, "VERSION")) {
		fputs("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":" VERSIONS "}", stdout);
		return 0;
	}
	int del = !strcmp(cmd, "DEL");
	if (!del && strcmp(cmd, "ADD") && strcmp(cmd, "CHECK") && strcmp(cmd, "STATUS") && strcmp(cmd, "GC"))
		fail(4, "invalid or missing environment variable CNI_COMMAND: unknown command \"%.64s\"", cmd);

	struct buf in = {0};
	char chunk[65536];
	for (;;) {
		ssize_t r = read(0, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) fail(5, "I/O failure: reading stdin: %s", strerror(errno));
		if (r == 0) break;
		put(&in, chunk, (size_t)r);
		if (in.n > MAX_STDIN) fail(5, "request of more than %d bytes on stdin exceeds the limit of %d bytes", MAX_STDIN, MAX_STDIN);
	}

	/* server_socket: top level, or from the ipam object when type != kube-ovn (IPAM-only mode) */
	/* the buffers are larger than any usable socket path, so "too long" below is reported as such, not as undecodable */
	char top[512] = "", type[64] = "", ver[16] = "", ipam[512] = "", ipamtype[64] = "";
	const char *keys[] = {"server_socket", "type", "cniVersion", NULL}, *ikeys[] = {"server_socket", "type", NULL};
	char *vals[] = {top, type, ver}, *ivals[] = {ipam, ipamtype};
	const size_t caps[] = {sizeof top, sizeof type, sizeof ver}, icaps[] = {sizeof ipam, sizeof ipamtype};
	int st[3] = {0}, ist[2] = {0};
	const char *sub = NULL, *end = in.p ? in.p + in.n : NULL;
	/* The walker accepts a superset of JSON, so a failure here is certainly a decoding failure (code 6). */
	if (!in.p || scan(in.p, end, keys, vals, caps, st, "ipam", &sub))
		fail(6, "cannot decode network configuration: stdin is not a JSON object");
	if (sub) scan(sub, end, ikeys, ivals, icaps, ist, NULL, NULL);
	if (ver[0] && strspn(ver, "0123456789.") == strlen(ver)) memcpy(version, ver, sizeof ver);
	int ipam_mode = sub && strcmp(type, "kube-ovn");
	const char *sock = ipam_mode ? ipam : top;
	/* as the agent: null = absent (the default socket); any other non-string is an error, never a silent fallback */
	int sst = ipam_mode ? ist[0] : st[0];
	if (sst == K_NOT_STRING) fail(7, "invalid network configuration: %sserver_socket must be a string", ipam_mode ? "ipam." : "");
	if (sst == K_UNDECODABLE)
		fail(7, "invalid network configuration: %sserver_socket is not a usable string (bad escape, NUL, or longer than %d bytes)", ipam_mode ? "ipam." : "", (int)sizeof top - 1);
	if (!*sock) sock = DEFAULT_SOCKET;
	if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		fail(7, "invalid network configuration: server_socket \"%s\" is longer than %d bytes", sock, (int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1);

	struct buf body = {0};
	puts_(&body, "{\"env\":{");
	int first = 1;
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		if (strncmp(*e, "CNI_", 4) || !eq) continue;
		if (!first) put(&body, ",", 1);
		first = 0;
		put_json(&body, *e, (size_t)(eq - *e));
		put(&body, ":", 1);
		put_json(&body, eq + 1, strlen(eq + 1));
	}
	puts_(&body, "},\"stdin\":");
	put_json(&body, in.p ? in.p : "", in.n);
	puts_(&body, "}");

	/* the wire body = the call (what a queued DEL keeps) + the reports of earlier calls */
	/* the report file lives next to the socket: only for an absolute socket path (never in the runtime's cwd), and
	 * only written when an agent answered the connect there (below) */
	struct buf wire = {0};
	put(&wire, body.p, body.n - 1);
	if (sock[0] == '/') {
		state_path(sock);
		r_cmd = cmd;
		put_prev(&wire);
	}
	puts_(&wire, "}");

	struct buf req = {0};
	char head[256];
	snprintf(head, sizeof head, "POST /cni/v1/call HTTP/1.1\r\nHost: kube-ovn-agent\r\nContent-Type: application/json\r\n"
	         "Content-Length: %zu\r\nConnection: close\r\n\r\n", wire.n);
	puts_(&req, head);
	put(&req, wire.p, wire.n);

	const char *tms = getenv("KOA_CNI_TIMEOUT_MS");
	long long total = tms && atoll(tms) > 0 ? atoll(tms) : TOTAL_MS, start = now_ms();
	struct buf ans = {0};
	int fd = dial(sock, start + (total < CONNECT_MS ? total : CONNECT_MS));
	int reached = fd >= 0;
	if (!reached) r_cmd = NULL; /* no agent there: leave no report file next to a socket path that may not exist */
	if (fd < 0 || exchange(fd, &req, &ans, start + total)) {
		int e = errno;
		if (fd >= 0) close(fd);
		if (del) {
			const char *cid = getenv("CNI_CONTAINERID"), *ifn = getenv("CNI_IFNAME");
			char qerr[1200];
			if (!cid || !*cid || !ifn || !*ifn)
				fail(4, "invalid or missing environment variable CNI_CONTAINERID/CNI_IFNAME (agent at %s unreachable: %s)", sock, strerror(e));
			if (enqueue(&body, cid, ifn, qerr, sizeof qerr) == 0) { save_report(0); return 0; } /* the agent completes it at start */
			fail(11, "cannot reach the kube-ovn agent at %s (%s) and cannot queue the DEL: %s", sock, strerror(e), qerr);
		}
		if (!reached) fail(11, "cannot reach the kube-ovn agent at %s: %s", sock, strerror(e));
		fail(11, "the kube-ovn agent at %s did not answer: %s", sock,
		     e == ETIMEDOUT ? "timed out" : e == EPIPE ? "the connection closed before an answer" : strerror(e));
	}
	close(fd);

	/* answer: status line, headers (x-cni-exit-status, content-length), body */
	char *hend = ans.p ? strstr(ans.p, "\r\n\r\n") : NULL;
	int status = -1, http = 0;
	long clen = -1;
	if (hend) {
		*hend = 0;
		sscanf(ans.p, "HTTP/1.%*d %d", &http);
		for (char *l = strstr(ans.p, "\r\n"); l; l = strstr(l, "\r\n")) {
			l += 2;
			if (!strncasecmp(l, "x-cni-exit-status:", 18)) status = atoi(l + 18);
			else if (!strncasecmp(l, "content-length:", 15)) clen = atol(l + 15);
		}
	}
	const char *out = hend ? hend + 4 : NULL;
	size_t outn = out ? ans.n - (size_t)(out - ans.p) : 0;
	if (!hend || status < 0 || status > 255 || (clen >= 0 && (size_t)clen != outn))
		fail(11, "the kube-ovn agent at %s gave an unexpected answer (HTTP %d, %zu bytes)", sock, http, outn);
	for (size_t off = 0; off < outn;) {
		ssize_t w = write(1, out + off, outn - off);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) { save_report(-1); return 1; }
		off += (size_t)w;
	}
	int code = 0;
	if (status) {
		const char *c = strstr(out, "\"code\":");
		long v = c ? strtol(c + 7, NULL, 10) : -1;
		code = v > 0 && v < 1000 ? (int)v : -1;
	}
	save_report(code);
	return status;
}
