// Internal: per-user locations (home directory, `~` expansion).
#pragma once

#include <string>

namespace axle::detail {

/// This user's home directory: $HOME when set and non-empty, else the password
/// database's entry when it is an existing directory owned by this user and not under
/// a shared temporary directory (/tmp, /var/tmp, /dev/shm). "" when there is none:
/// callers then use no per-user file or directory at all, never a shared one.
std::string user_home();

/// Whether `path` is /tmp, /var/tmp, /dev/shm or below one of them.
bool is_shared_tmp(const std::string& path);

/// `path` with a leading "~" or "~/" replaced by user_home(). "" when it needs a home
/// and there is none (`why`, when given, then says so). Other paths are returned as is.
std::string expand_home(const std::string& path, std::string* why);

}  // namespace axle::detail
