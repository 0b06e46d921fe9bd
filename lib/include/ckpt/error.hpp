// SPDX-License-Identifier: Apache-2.0
// Error kinds, the error value, and the mapping to the exit codes of SPEC §8.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace ckpt {

enum class ErrorKind {
  integrity,    // 1
  usage,        // 2
  not_found,    // 3
  conflict,     // 4
  locked,       // 5
  io,           // 6
  unsupported,  // 7
  interrupted,  // 130
};

int exit_code(ErrorKind kind);
const char* kind_name(ErrorKind kind);

// Thrown inside the library; the public operations turn it into a Result.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, int sys_errno = 0)
      : std::runtime_error(message), m_kind(kind), m_errno(sys_errno) {}
  ErrorKind kind() const { return m_kind; }
  std::string message() const { return what(); }
  // The errno behind an io error, 0 when there is none.
  int sys_errno() const { return m_errno; }
  // What exactly was not found (kind not_found), so a script can tell a
  // missing root from an empty one without parsing messages: one of the
  // k_reason_* values; empty when not given.
  const std::string& reason() const { return m_reason; }
  Error&& with_reason(std::string reason) && {
    m_reason = std::move(reason);
    return std::move(*this);
  }

 private:
  ErrorKind m_kind;
  int m_errno;
  std::string m_reason;
};

// The reasons of not_found errors (the "reason" of a --json error object).
inline constexpr const char* k_reason_no_root = "no_root";        // the root does not exist
inline constexpr const char* k_reason_empty_root = "empty_root";  // it holds no checkpoint yet
inline constexpr const char* k_reason_no_checkpoint = "no_checkpoint";  // the ref names none
inline constexpr const char* k_reason_no_match = "no_match";  // --only/--weights-only: no file
inline constexpr const char* k_reason_no_source = "no_source";  // a save source is missing
// The reasons of conflict errors of sharded saves.
inline constexpr const char* k_reason_superseded = "superseded";  // a newer attempt group took over
inline constexpr const char* k_reason_step_exists = "step_exists";  // the step is committed
inline constexpr const char* k_reason_shard_mismatch = "shard_mismatch";  // N, paths or values clash
inline constexpr const char* k_reason_no_pending = "no_pending";  // abort: no such pending step
// rm without --force of a checkpoint `last` or best.json names.
inline constexpr const char* k_reason_protected = "protected";

// Builds an io Error from errno, naming the operation and the path.
Error io_error(int err, const std::string& what, const std::string& path);

// A value or the Error that prevented it.
template <class T>
class Result {
 public:
  Result(T value) : m_v(std::move(value)) {}
  Result(Error error) : m_v(std::move(error)) {}
  bool ok() const { return m_v.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() {
    if (!ok()) throw std::get<1>(m_v);
    return std::get<0>(m_v);
  }
  const T& value() const {
    if (!ok()) throw std::get<1>(m_v);
    return std::get<0>(m_v);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { return std::get<1>(m_v); }

 private:
  std::variant<T, Error> m_v;
};

// Runs f, turning a thrown Error (or an unexpected exception) into a Result.
template <class F>
auto capture(F&& f) -> Result<decltype(f())> {
  try {
    return f();
  } catch (const Error& e) {
    return e;
  } catch (const std::bad_alloc&) {
    return Error(ErrorKind::io, "out of memory");
  }
}

}  // namespace ckpt
