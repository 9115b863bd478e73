#include "safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "errors.h"

namespace cmac {

namespace {

using json = nlohmann::json;

struct DtypeInfo {
  const char* name;
  int64_t bytes;
  bool supported;
  at::ScalarType type;
};

const std::vector<DtypeInfo>& dtypes() {
  static const std::vector<DtypeInfo> d = {
      {"BOOL", 1, true, at::kBool},     {"U8", 1, true, at::kByte},    {"I8", 1, true, at::kChar},
      {"I16", 2, true, at::kShort},     {"U16", 2, false, at::kShort}, {"F16", 2, true, at::kHalf},
      {"BF16", 2, true, at::kBFloat16}, {"I32", 4, true, at::kInt},    {"U32", 4, false, at::kInt},
      {"F32", 4, true, at::kFloat},     {"F64", 8, true, at::kDouble}, {"I64", 8, true, at::kLong},
      {"U64", 8, false, at::kLong},
  };
  return d;
}

const DtypeInfo* dtypeByName(const std::string& s) {
  for (const auto& d : dtypes())
    if (s == d.name) return &d;
  return nullptr;
}

const char* dtypeName(at::ScalarType t) {
  for (const auto& d : dtypes())
    if (d.supported && d.type == t) return d.name;
  valueError(std::string("safetensors: cannot store dtype ") + c10::toString(t));
}

[[noreturn]] void bad(const std::string& what, const std::string& why) {
  checkpointError("malformed safetensors (" + what + "): " + why +
                  ". Fix: use a file written by cmac or the safetensors library, or re-download it.");
}

uint64_t asOffset(const json& v, const std::string& what, const std::string& name) {
  if (!v.is_number_unsigned()) bad(what, "tensor '" + name + "' has a non-integer or negative offset/dimension");
  return v.get<uint64_t>();
}

// Rejects duplicate keys at every level (nlohmann would keep the last one) and
// nesting deeper than kMaxHeaderDepth (a valid header needs 3 levels; without
// a cap, a hostile header of millions of '[' costs memory and time).
json parseHeaderJson(const char* begin, const char* end, const std::string& what) {
  std::vector<std::set<std::string>> seen;
  std::string dup;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    // `depth` counts the enclosing containers, so a start at depth 64 opens the 65th level.
    if ((ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) && depth >= kMaxHeaderDepth)
      bad(what, "header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels");
    if (ev == json::parse_event_t::object_start)
      seen.emplace_back();
    else if (ev == json::parse_event_t::object_end) {
      if (!seen.empty()) seen.pop_back();
    } else if (ev == json::parse_event_t::key && !seen.empty()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!seen.back().insert(k).second && dup.empty()) dup = k;
    }
    return true;
  };
  json h;
  try {
    h = json::parse(begin, end, cb, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    bad(what, std::string("header is not valid JSON: ") + e.what());
  }
  if (!dup.empty()) bad(what, "duplicate key '" + dup + "' in header");
  return h;
}

}  // namespace

Safetensors parseSafetensors(const uint8_t* data, size_t size, const std::string& what) {
  if (size < 8) bad(what, "file shorter than the 8-byte header length (" + std::to_string(size) + " bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kMaxSafetensorsHeader) bad(what, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > size - 8)
    bad(what,
        "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes)");
  if (n == 0) bad(what, "empty header");
  const char* hb = reinterpret_cast<const char*>(data + 8);
  json h = parseHeaderJson(hb, hb + n, what);
  if (!h.is_object()) bad(what, "header is not a JSON object");

  const uint64_t bufSize = size - 8 - n;
  const uint8_t* buf = data + 8 + n;

  Safetensors out;
  struct Entry {
    std::string name;
    const DtypeInfo* dt;
    std::vector<int64_t> shape;
    uint64_t b, e;
  };
  std::vector<Entry> entries;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad(what, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) bad(what, "__metadata__ value for '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) bad(what, "entry '" + name + "' is not an object");
    for (auto k = v.begin(); k != v.end(); ++k)
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets")
        bad(what, "entry '" + name + "' has unknown field '" + k.key() + "'");
    if (!v.contains("dtype") || !v["dtype"].is_string()) bad(what, "entry '" + name + "' has no dtype string");
    const DtypeInfo* dt = dtypeByName(v["dtype"].get<std::string>());
    if (!dt) bad(what, "entry '" + name + "' has unknown dtype '" + v["dtype"].get<std::string>() + "'");
    if (!v.contains("shape") || !v["shape"].is_array()) bad(what, "entry '" + name + "' has no shape array");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      bad(what, "entry '" + name + "' needs data_offsets [begin, end]");
    Entry e{name, dt, {}, asOffset(v["data_offsets"][0], what, name), asOffset(v["data_offsets"][1], what, name)};
    if (e.b > e.e) bad(what, "entry '" + name + "' has begin > end");
    if (e.e > bufSize)
      bad(what, "entry '" + name + "' ends at " + std::to_string(e.e) + " past the data buffer of " +
                    std::to_string(bufSize) + " bytes");
    uint64_t numel = 1;
    if (v["shape"].size() > 64) bad(what, "entry '" + name + "' has more than 64 dimensions");
    for (const auto& d : v["shape"]) {
      uint64_t dim = asOffset(d, what, name);
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim))
        bad(what, "entry '" + name + "' has a shape whose size overflows");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    if (numel > std::numeric_limits<uint64_t>::max() / dt->bytes ||
        numel * static_cast<uint64_t>(dt->bytes) != e.e - e.b)
      bad(what, "entry '" + name + "' has " + std::to_string(e.e - e.b) + " bytes but shape x dtype needs " +
                    std::to_string(numel) + " x " + std::to_string(dt->bytes));
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.b != b.b ? a.b < b.b : a.e < b.e; });
  uint64_t pos = 0;
  for (const auto& e : entries) {
    if (e.b != pos)
      bad(what, "entry '" + e.name + "' starts at " + std::to_string(e.b) + " but the previous ends at " +
                    std::to_string(pos) + " (gaps and overlaps are not allowed)");
    pos = e.e;
  }
  if (pos != bufSize)
    bad(what, "data buffer has " + std::to_string(bufSize) + " bytes but the tensors cover " + std::to_string(pos) +
                  " (trailing bytes or truncation)");
  for (const auto& e : entries) {
    if (!e.dt->supported)
      checkpointError("safetensors (" + what + "): tensor '" + e.name + "' has dtype " + e.dt->name +
                      ", which this libtorch cannot hold. Fix: convert it to a signed or float dtype.");
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dt->type));
    if (e.e > e.b) std::memcpy(t.data_ptr(), buf + e.b, e.e - e.b);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

namespace {

// What a non-regular file is, for the error that refuses it.
const char* fileKind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  return "not a regular file";
}

// Closes the descriptor on every path out of readSafetensors.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Safetensors readSafetensors(const std::string& path) {
  // O_NONBLOCK: opening a FIFO without a writer would otherwise block forever
  // (and hold the model's lock in load()); fstat then refuses anything that is
  // not a regular file before a byte is read.
  Fd f{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
  if (f.fd < 0)
    ioError("cannot open '" + path + "': " + std::strerror(errno) + ". Fix: check the path and its permissions.");
  struct stat st {};
  if (::fstat(f.fd, &st) != 0)
    ioError("cannot stat '" + path + "': " + std::strerror(errno) + ". Fix: check the path and its permissions.");
  if (!S_ISREG(st.st_mode))
    ioError("cannot read '" + path + "': it is " + fileKind(st.st_mode) +
            ", not a regular file. Fix: pass the path of a .safetensors file" +
            (S_ISDIR(st.st_mode) ? " (e.g. a step-N.safetensors inside it)." : "."));
  std::vector<uint8_t> bytes;
  try {
    bytes.resize(static_cast<size_t>(st.st_size));
  } catch (const std::bad_alloc&) {
    ioError("cannot read '" + path + "': " + std::to_string(st.st_size) +
            " bytes do not fit in memory. Fix: free memory or use a smaller file.");
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t r = ::read(f.fd, bytes.data() + done, bytes.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) ioError("cannot read '" + path + "': " + std::strerror(errno) + ". Fix: check the file and the disk.");
    if (r == 0) break;  // shrank since fstat: parse() reports the truncation
    done += static_cast<size_t>(r);
  }
  bytes.resize(done);
  return parseSafetensors(bytes.data(), bytes.size(), path);
}

std::string serializeSafetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  uint64_t off = 0;
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || !names.insert(name).second)
      valueError("safetensors: duplicate or reserved tensor name '" + name + "'");
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    h[name] = {
        {"dtype", dtypeName(c.scalar_type())}, {"shape", c.sizes().vec()}, {"data_offsets", {off, off + nbytes}}};
    off += nbytes;
    cpu.push_back(std::move(c));
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + header.size() + off);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += header;
  for (const auto& c : cpu) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return out;
}

void writeFileAtomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    ioError("cannot create '" + tmp + "': " + std::strerror(errno) +
            ". Fix: check that the folder exists and is writable.");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      ioError("cannot write '" + path + "': " + std::strerror(err) +
              ". Fix: free disk space or choose another folder; the previous file is untouched.");
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    ioError("cannot flush '" + path + "': " + std::strerror(err) + "; the previous file is untouched.");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    ioError("cannot rename into '" + path + "': " + std::strerror(err));
  }
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.find_last_of('/'));
  if (dir.empty()) dir = "/";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void writeSafetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

}  // namespace cmac
