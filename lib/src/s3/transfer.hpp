// SPDX-License-Identifier: Apache-2.0
// Moving whole files to and from an object store at the speed of the link:
// parts in parallel (multipart upload, ranged GETs), SHA-256 computed while
// the bytes stream, memory bounded by the parts in flight.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ckpt/fs.hpp"
#include "ckpt/transfer.hpp"
#include "s3/client.hpp"

namespace ckpt::s3 {

struct Tuning {
  std::size_t part_size = std::size_t{16} << 20;  // at least 5 MiB (the store's minimum part)
  unsigned parallel = 8;                          // parts in flight, each one buffer of part_size
  // Uploads only: the key must not exist. A single PUT is create-only
  // (If-None-Match: *); a multipart upload is completed only when a HEAD
  // finds no object there (stores ignore the condition on completion).
  // Error(conflict) when another writer stored the key; an object there with
  // the same size and the ETag this upload's parts give is adopted instead
  // (the same bytes, stored by an earlier run).
  bool create_only = false;
  // With create_only: runs the HEAD and the completion of a multipart upload
  // (the argument) inside the caller's exclusion, such as a lease that every
  // remover of the key holds too.
  std::function<void(const std::function<void()>&)> completing;
  // Server-side copies (copy_within): the biggest object one CopyObject
  // copies (the API's limit is 5 GiB); a bigger one is copied in parts of
  // copy_part_size (at least 5 MiB, at most 5 GiB; larger when the object
  // needs more than 10000), up to four at once.
  std::uint64_t max_single_copy = std::uint64_t{5} << 30;
  std::uint64_t copy_part_size = std::uint64_t{1} << 30;
};

// The ETag a store gives an object completed from parts whose ETags (MD5s,
// hex) are these: the MD5 of their concatenated digests, "-", their count.
std::string multipart_etag(const std::vector<std::string>& part_etags);

struct Moved {
  std::uint64_t size = 0;
  std::string sha256;  // lowercase hex of every byte moved
  std::string etag;    // of the object written (uploads)
};

// Uploads the local file path to key: one PUT with Content-MD5 when it fits
// in one part, else a multipart upload with up to tuning.parallel parts in
// flight, each with its Content-MD5. SHA-256 of the bytes is computed as they
// are read. The file is read once, in order. On any failure or interrupt the
// multipart upload is aborted (nothing of it stays in the store) and the
// error rethrown. progress gets the bytes of each part as it is stored, one
// call at a time (from any of the threads).
// Note: a multipart object's ETag is not an MD5 of the content.
Moved upload_file(Client& client, FileSystem& fs, const std::string& path, const std::string& key,
                  const Tuning& tuning = {}, const ProgressFn& progress = {});

// Copies from_key (of size bytes) to to_key inside the store, no byte going
// through this host: one CopyObject, or above tuning.max_single_copy a
// multipart upload of parts copied by the store (UploadPartCopy). Create-only
// as uploads are with tuning.create_only (If-None-Match: *, and a HEAD first
// for a store that ignores it on copies and on completions; an object already
// there is kept when it is from_key's copy: the same size and ETag; else
// Error(conflict)). The new object's ETag, its size checked; progress gets
// the bytes as they are copied. The bytes are not hashed: the caller trusts
// what it knows of from_key.
std::string copy_within(Client& client, const std::string& from_key, const std::string& to_key,
                        std::uint64_t size, const Tuning& tuning = {},
                        const ProgressFn& progress = {});

// Downloads [0, size) of key with ranged GETs, up to tuning.parallel parts in
// flight, and hands the bytes to sink in order (write them to a file, or drop
// them to verify), hashing them on the way. Fails (io) when the object is
// shorter than size. sink may be empty.
Moved download(Client& client, const std::string& key, std::uint64_t size, const Tuning& tuning = {},
               const std::function<void(const char*, std::size_t)>& sink = {},
               const ProgressFn& progress = {});

}  // namespace ckpt::s3
