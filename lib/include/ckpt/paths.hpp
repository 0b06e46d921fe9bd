// SPDX-License-Identifier: Apache-2.0
// Stored-path rules (SPEC §2) and glob matching of stored paths.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ckpt {

// nullopt when path is a valid stored path, else why it is not.
std::optional<std::string> stored_path_problem(std::string_view path);

// Shell-style match (*, ?, [...]); '*' also matches '/', so "*.pt" finds
// "optim/shard-0.pt".
bool glob_match(const std::string& pattern, const std::string& path);

// Absolute, lexically normalised form of path (no symlink resolution).
std::string absolute_path(const std::string& path);

}  // namespace ckpt
