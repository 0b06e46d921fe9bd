// SPDX-License-Identifier: Apache-2.0
#include "s3/transfer.hpp"

#include <fcntl.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <openssl/evp.h>

#include "ckpt/hash.hpp"
#include "ckpt/parallel.hpp"
#include "ckpt/transfer.hpp"

namespace ckpt::s3 {

namespace {

constexpr std::size_t k_min_part = std::size_t{5} << 20;

using Buffer = std::unique_ptr<char[]>;

void check_tuning(const Tuning& t) {
  if (t.part_size < k_min_part) {
    throw Error(ErrorKind::usage, "an object-store part must be at least 5 MiB");
  }
  if (t.parallel == 0) throw Error(ErrorKind::usage, "at least one part in flight");
}

// Reads up to n bytes (fewer only at the end of the file).
std::size_t read_full(FileSystem& fs, int fd, char* buf, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    std::size_t r = fs.read(fd, buf + got, n - got);
    if (r == 0) break;
    got += r;
  }
  return got;
}

Error changed_while_read(const std::string& path) {
  return Error(ErrorKind::io, path + " changed size while it was read; nothing of it was kept");
}

// What the threads of one transfer share: a lock, a wake-up, the first failure.
struct Shared {
  std::mutex m;
  std::condition_variable cv;
  std::exception_ptr failure;
  // Records the exception being handled (the first one wins) and wakes every thread.
  void fail() {
    std::lock_guard<std::mutex> lock(m);
    if (!failure) failure = std::current_exception();
    cv.notify_all();
  }
};

// Threads that end with the scope, whatever happens.
class Workers {
 public:
  ~Workers() { join(); }
  template <typename F>
  void start(unsigned n, F fn) {
    for (unsigned i = 0; i < n; ++i) m_threads.emplace_back(fn);
  }
  void join() {
    for (auto& t : m_threads) {
      if (t.joinable()) t.join();
    }
  }

 private:
  std::vector<std::thread> m_threads;
};

// The value of one hex digit, -1 when it is none.
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The key of a create-only upload was stored by another writer (one that
// took the step over from a writer stalled past its lease).
Error stored_meanwhile(const Client& client, const std::string& key) {
  return Error(ErrorKind::conflict,
               fmt::format("s3://{}/{} was stored by another writer meanwhile", client.bucket(), key));
}

}  // namespace

std::string multipart_etag(const std::vector<std::string>& part_etags) {
  std::string digests;
  for (const auto& e : part_etags) {
    if (e.size() != 32) return std::string();  // not an MD5: no ETag to expect
    for (std::size_t i = 0; i < e.size(); i += 2) {
      int hi = hex_value(e[i]);
      int lo = hex_value(e[i + 1]);
      if (hi < 0 || lo < 0) return std::string();
      digests.push_back(static_cast<char>(hi * 16 + lo));
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(digests.data(), digests.size(), md, &len, EVP_md5(), nullptr) != 1) {
    throw Error(ErrorKind::io, "MD5 failed");
  }
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return fmt::format("{}-{}", out, part_etags.size());
}

Moved upload_file(Client& client, FileSystem& fs, const std::string& path, const std::string& key,
                  const Tuning& tuning, const ProgressFn& progress) {
  check_tuning(tuning);
  int fd = fs.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  FdGuard guard(fs, fd);
  const std::uint64_t size = fs.fstat(fd).size;
  Sha256 sha;
  char probe = 0;
  Moved out;
  out.size = size;

  if (size <= tuning.part_size) {
    std::string body(size, '\0');
    if (read_full(fs, fd, body.data(), body.size()) != size || read_full(fs, fd, &probe, 1) != 0) {
      throw changed_while_read(path);
    }
    check_interrupt();
    sha.update(body.data(), body.size());
    PutOptions o;
    o.if_none_match = tuning.create_only;
    if (client.put(key, body, o, &out.etag) == Put::precondition_failed) {
      // There already: this PUT, applied but its answer lost and retried,
      // or another writer's object.
      auto there = client.get(key);
      if (!there || there->body != body) throw stored_meanwhile(client, key);
      out.etag = there->etag;
    }
    if (progress) progress(size);
    out.sha256 = sha.hex_digest();
    return out;
  }

  const std::size_t part = tuning.part_size;
  const std::size_t parts = static_cast<std::size_t>((size + part - 1) / part);
  std::string upload_id = client.create_upload(key);
  std::vector<std::string> etags(parts);

  Shared sh;
  struct Job {
    std::size_t index;
    std::size_t len;
    Buffer buf;
  };
  std::deque<Job> queue;
  std::vector<Buffer> pool;
  std::size_t outstanding = 0;  // parts read and not yet stored
  bool done_reading = false;

  auto worker = [&] {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(sh.m);
        sh.cv.wait(lock, [&] { return sh.failure || !queue.empty() || done_reading; });
        if (sh.failure || queue.empty()) return;
        job = std::move(queue.front());
        queue.pop_front();
      }
      try {
        std::string etag = client.upload_part(key, upload_id, static_cast<unsigned>(job.index + 1),
                                              std::string_view(job.buf.get(), job.len));
        std::lock_guard<std::mutex> lock(sh.m);
        if (progress) progress(job.len);  // one call at a time
        etags[job.index] = std::move(etag);
        pool.push_back(std::move(job.buf));
        --outstanding;
        sh.cv.notify_all();
      } catch (...) {
        sh.fail();
        return;
      }
    }
  };

  Workers workers;
  try {
    workers.start(static_cast<unsigned>(std::min<std::size_t>(tuning.parallel, parts)), worker);
    for (std::size_t i = 0; i < parts; ++i) {
      Buffer buf;
      {
        std::unique_lock<std::mutex> lock(sh.m);
        sh.cv.wait(lock, [&] { return sh.failure || outstanding < tuning.parallel; });
        if (sh.failure) break;
        if (!pool.empty()) {
          buf = std::move(pool.back());
          pool.pop_back();
        }
        ++outstanding;
      }
      if (!buf) buf.reset(new char[part]);
      std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(part, size - i * part));
      if (read_full(fs, fd, buf.get(), len) != len) throw changed_while_read(path);
      check_interrupt();
      sha.update(buf.get(), len);
      std::lock_guard<std::mutex> lock(sh.m);
      queue.push_back(Job{i, len, std::move(buf)});
      sh.cv.notify_all();
    }
    if (read_full(fs, fd, &probe, 1) != 0) throw changed_while_read(path);
    {
      std::lock_guard<std::mutex> lock(sh.m);
      done_reading = true;
      sh.cv.notify_all();
    }
    workers.join();
    if (sh.failure) std::rethrow_exception(sh.failure);
    bool adopted = false;
    auto complete = [&] {
      if (tuning.create_only) {
        if (auto there = client.head(key)) {
          std::string expected = multipart_etag(etags);
          if (expected.empty() || there->size != size || there->etag != expected) {
            throw stored_meanwhile(client, key);
          }
          // These very bytes, stored before (a rerun): kept, not replaced.
          adopted = true;
          out.etag = there->etag;
          return;
        }
      }
      out.etag = client.complete_upload(key, upload_id, etags);
    };
    if (tuning.create_only && tuning.completing) {
      tuning.completing(complete);
    } else {
      complete();
    }
    if (adopted) {
      try {
        client.abort_upload(key, upload_id);
      } catch (const Error&) {
        // Left for prune, which aborts idle uploads.
      }
    }
  } catch (...) {
    sh.fail();
    workers.join();
    try {
      client.abort_upload(key, upload_id);
    } catch (const Error&) {
      // Left for prune, which aborts stale uploads; the first error is the one to report.
    }
    std::rethrow_exception(sh.failure);
  }
  out.sha256 = sha.hex_digest();
  return out;
}

namespace {

// A copy too big for one CopyObject: a multipart upload whose parts are
// copied inside the store (UploadPartCopy), several at once. Its ETag.
std::string copy_in_parts(Client& client, const std::string& from_key, const std::string& to_key,
                          std::uint64_t size, const Tuning& tuning, const ProgressFn& progress) {
  // At most 10000 parts, each at most 5 GiB.
  const std::uint64_t part = std::max<std::uint64_t>(tuning.copy_part_size, (size + 9999) / 10000);
  const std::size_t parts = static_cast<std::size_t>((size + part - 1) / part);
  std::string upload_id = client.create_upload(to_key);
  std::vector<std::string> etags(parts);
  try {
    for_each_parallel(parts, std::min<unsigned>(tuning.parallel, 4), [&](std::size_t i) {
      check_interrupt();
      const std::uint64_t first = i * part;
      const std::uint64_t last = std::min(size, first + part) - 1;
      etags[i] = client.copy_part(to_key, upload_id, static_cast<unsigned>(i + 1), from_key, first, last);
      if (progress) progress(last - first + 1);
    });
    return client.complete_upload(to_key, upload_id, etags);
  } catch (...) {
    try {
      client.abort_upload(to_key, upload_id);
    } catch (const Error&) {
      // Left for prune, which aborts stale uploads; the first error is the one to report.
    }
    throw;
  }
}

}  // namespace

std::string copy_within(Client& client, const std::string& from_key, const std::string& to_key,
                        std::uint64_t size, const Tuning& tuning, const ProgressFn& progress) {
  const bool in_parts = size > tuning.max_single_copy;
  // A store may ignore If-None-Match on a copy (radosgw does), and always
  // does on a multipart completion: what is there already is looked at
  // first too.
  std::optional<std::string> etag;
  std::optional<ObjectInfo> there;
  if (tuning.create_only) there = client.head(to_key);
  if (!there) {
    if (in_parts) {
      etag = copy_in_parts(client, from_key, to_key, size, tuning, progress);
    } else {
      etag = client.copy_object(from_key, to_key, tuning.create_only);
    }
    there = client.head(to_key);
  }
  if (!etag) {
    // Stored before: this copy, applied but its answer lost and retried, or
    // another writer's object.
    auto source = client.head(from_key);
    if (!there || !source || there->size != source->size || there->etag != source->etag) {
      throw stored_meanwhile(client, to_key);
    }
    etag = there->etag;
  }
  if (!there || there->size != size) {
    throw Error(ErrorKind::io,
                fmt::format("copying s3://{}/{} to {}: the copy is {}, not {} bytes", client.bucket(),
                            from_key, to_key, there ? std::to_string(there->size) : "missing",
                            size));
  }
  if (etag->empty()) etag = there->etag;
  if (progress && !in_parts) progress(size);
  return *etag;
}

Moved download(Client& client, const std::string& key, std::uint64_t size, const Tuning& tuning,
               const std::function<void(const char*, std::size_t)>& sink, const ProgressFn& progress) {
  check_tuning(tuning);
  Sha256 sha;
  Moved out;
  out.size = size;
  const std::size_t part = tuning.part_size;
  const std::size_t parts = static_cast<std::size_t>((size + part - 1) / part);

  Shared sh;
  struct Done {
    Buffer buf;
    std::size_t len;
  };
  std::map<std::size_t, Done> ready;
  std::vector<Buffer> pool;
  std::size_t next = 0;      // the next part to fetch
  std::size_t consumed = 0;  // parts hashed and passed on

  auto worker = [&] {
    for (;;) {
      std::size_t i;
      Buffer buf;
      {
        std::unique_lock<std::mutex> lock(sh.m);
        sh.cv.wait(lock, [&] { return sh.failure || next >= parts || next < consumed + tuning.parallel; });
        if (sh.failure || next >= parts) return;
        i = next++;
        if (!pool.empty()) {
          buf = std::move(pool.back());
          pool.pop_back();
        }
      }
      try {
        // A part, or the whole of a smaller object (every part fits the first).
        if (!buf) buf.reset(new char[static_cast<std::size_t>(std::min<std::uint64_t>(part, size))]);
        std::uint64_t offset = static_cast<std::uint64_t>(i) * part;
        std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(part, size - offset));
        std::size_t got = 0;
        client.get_range(key, offset, len, [&](const char* data, std::size_t n) {
          if (n > len - got) throw Error(ErrorKind::io, "GET of a range: more bytes than asked for");
          std::memcpy(buf.get() + got, data, n);
          got += n;
        });
        std::lock_guard<std::mutex> lock(sh.m);
        ready.emplace(i, Done{std::move(buf), len});
        sh.cv.notify_all();
      } catch (...) {
        sh.fail();
        return;
      }
    }
  };

  Workers workers;
  try {
    workers.start(static_cast<unsigned>(std::min<std::size_t>(tuning.parallel, std::max<std::size_t>(parts, 1))),
                  worker);
    for (std::size_t i = 0; i < parts; ++i) {
      Done d;
      {
        std::unique_lock<std::mutex> lock(sh.m);
        sh.cv.wait(lock, [&] { return sh.failure || ready.count(i) != 0; });
        if (sh.failure) std::rethrow_exception(sh.failure);
        auto it = ready.find(i);
        d = std::move(it->second);
        ready.erase(it);
      }
      check_interrupt();
      sha.update(d.buf.get(), d.len);
      if (sink) sink(d.buf.get(), d.len);
      if (progress) progress(d.len);
      std::lock_guard<std::mutex> lock(sh.m);
      pool.push_back(std::move(d.buf));
      ++consumed;
      sh.cv.notify_all();
    }
  } catch (...) {
    sh.fail();
    workers.join();
    std::rethrow_exception(sh.failure);
  }
  workers.join();
  out.sha256 = sha.hex_digest();
  return out;
}

}  // namespace ckpt::s3
