// The copy+hash loop and hashing of files already in place.
#include "ckpt/transfer.hpp"

#include <fcntl.h>

#include <atomic>
#include <csignal>
#include <memory>

#include "ckpt/error.hpp"
#include "ckpt/hash.hpp"

namespace ckpt {

namespace {

constexpr std::size_t k_buffer_size = 1 << 20;

volatile std::sig_atomic_t g_interrupted = 0;

}  // namespace

void request_interrupt() { g_interrupted = 1; }
bool interrupt_requested() { return g_interrupted != 0; }
void check_interrupt() {
  if (g_interrupted) throw Error(ErrorKind::interrupted, "interrupted");
}

TransferResult copy_and_hash(FileSystem& fs, int src_fd, int dst_fd, Hash hash,
                             const ProgressFn& progress) {
  std::unique_ptr<char[]> buf(new char[k_buffer_size]);
  std::optional<Sha256> sha;
  if (hash == Hash::yes) sha.emplace();
  TransferResult result;
  for (;;) {
    check_interrupt();
    std::size_t n = fs.read(src_fd, buf.get(), k_buffer_size);
    if (n == 0) break;
    if (sha) sha->update(buf.get(), n);
    if (dst_fd >= 0) fs.write(dst_fd, buf.get(), n);
    result.size += n;
    if (progress) progress(n);
  }
  if (sha) result.sha256 = sha->hex_digest();
  return result;
}

TransferResult hash_fd(FileSystem& fs, int fd, Hash hash, const ProgressFn& progress) {
  return copy_and_hash(fs, fd, -1, hash, progress);
}

TransferResult hash_file(FileSystem& fs, const std::string& path, Hash hash,
                         const ProgressFn& progress) {
  FdGuard fd(fs, fs.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
  if (fs.fstat(fd.get()).type != FileType::file) {
    throw Error(ErrorKind::integrity, path + " is not a regular file");
  }
  return hash_fd(fs, fd.get(), hash, progress);
}

}  // namespace ckpt
