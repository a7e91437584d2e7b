#include "axle/error.hpp"

namespace axle {
namespace {
std::string decorate(const std::string& message, const Error::Details& d) {
  std::string out;
  if (!d.backend.empty()) out += "[" + d.backend + "] ";
  out += message;
  if (!d.call.empty() || !d.status_name.empty()) {
    out += " (";
    if (!d.call.empty()) out += d.call;
    if (!d.status_name.empty() || d.status != 0) {
      if (!d.call.empty()) out += ": ";
      out += d.status_name.empty() ? "status" : d.status_name;
      out += " " + std::to_string(d.status);
    }
    out += ")";
  }
  return out;
}
}  // namespace

Error::Error(const std::string& message) : std::runtime_error(message), message_(message) {}
Error::Error(const std::string& message, Details details)
    : std::runtime_error(decorate(message, details)), message_(message), details_(std::move(details)) {}

BuildError::BuildError(const std::string& message, Details details, std::string log)
    : Error(message + "\n--- build log ---\n" + log, std::move(details)), log_(std::move(log)) {}

ConfigError::ConfigError(const std::string& message, std::string file, int line, std::string key)
    : Error((file.empty() ? std::string() : file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": ") +
            message + (key.empty() ? std::string() : " (key '" + key + "')")),
      file_(std::move(file)),
      line_(line),
      key_(std::move(key)) {}

ConfigError::ConfigError(const std::string& what, std::string file, int line, std::string key, Preformatted)
    : Error(what), file_(std::move(file)), line_(line), key_(std::move(key)) {}

}  // namespace axle
