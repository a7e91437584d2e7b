#include "common/tuning_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include "axle/config.hpp"
#include "axle/error.hpp"
#include "common/env_choice.hpp"

namespace axle::embedded {
std::string_view kernel_resource(std::string_view relative_path);
}

namespace axle::kernels_detail {
namespace {

struct Loaded {
  bool loaded = false;
  bool shipped_on = true;
  nlohmann::json user, shipped;
  std::string user_path;
};
std::mutex g_mutex;
Loaded g_loaded;

const Loaded& loaded() {  // caller holds g_mutex
  if (g_loaded.loaded) return g_loaded;
  Loaded l;
  l.shipped_on = shipped_tuning_enabled();
  if (l.shipped_on) {
    const std::string_view db = embedded::kernel_resource("tuning/gemm.json");
    if (!db.empty()) l.shipped = parse_tuning_document(std::string(db), "kernels/tuning/gemm.json (built in)");
    const std::string_view conv = embedded::kernel_resource("tuning/conv.json");
    if (!conv.empty()) {
      nlohmann::json c = parse_tuning_document(std::string(conv), "kernels/tuning/conv.json (built in)");
      if (c.contains("conv")) l.shipped["conv"] = c["conv"];
    }
  }
  l.user_path = tuning_file();
  if (!l.user_path.empty()) l.user = read_tuning_document(l.user_path);
  l.loaded = true;
  g_loaded = std::move(l);
  return g_loaded;
}

bool iequal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

}  // namespace

bool shipped_tuning_enabled() {
  return blas::detail::env_choice<int>("AXLE_TUNING_SHIPPED",
                                      {{"1", 1}, {"on", 1}, {"yes", 1}, {"0", 0}, {"off", 0}, {"no", 0}}, 1,
                                      "1, on, yes, 0, off, no") != 0;
}

nlohmann::json parse_tuning_document(const std::string& text, const std::string& origin) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    int line = 1;
    for (std::size_t i = 0; i < e.byte && i < text.size(); ++i) line += text[i] == '\n';
    throw ConfigError("tuning file " + origin + ": " + e.what(), origin, line, "");
  } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range.406: a number too large for a double
    throw ConfigError("tuning file " + origin + ": " + e.what(), origin, 0, "");
  }
  if (!doc.is_object()) throw ConfigError("tuning file " + origin + ": top level must be an object", origin, 0, "");
  for (const char* op : {"gemm", "conv"}) {
    if (!doc.contains(op)) continue;
    if (!doc[op].is_array())
      throw ConfigError("tuning file " + origin + ": \"" + op + "\" must be an array", origin, 0, op);
    for (const auto& e : doc[op])
      if (!e.is_object())
        throw ConfigError("tuning file " + origin + ": " + op + " entries must be objects", origin, 0, op);
  }
  return doc;
}

nlohmann::json read_tuning_document(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return nlohmann::json::object();
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_tuning_document(ss.str(), path);
}

std::vector<TuningSource> tuning_sources(const std::string& operation) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Loaded& l = loaded();
  std::vector<TuningSource> out;
  if (l.user.is_object() && l.user.contains(operation)) out.push_back(TuningSource{l.user_path, l.user[operation]});
  if (l.shipped.is_object() && l.shipped.contains(operation))
    out.push_back(TuningSource{"kernels/tuning/" + operation + ".json (built in)", l.shipped[operation]});
  return out;
}

void reset_tuning_files() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_loaded = Loaded{};
}

void update_tuning_file(const std::string& path, const std::string& operation,
                        const std::function<bool(const nlohmann::json&)>& replaced, const nlohmann::json& fresh) {
  // One update at a time in this process: the read-modify-write would otherwise lose a
  // concurrent update's entries, and both would write the same temporary file.
  static std::mutex* update_mutex = new std::mutex;
  std::lock_guard<std::mutex> update_lock(*update_mutex);
  nlohmann::json doc = read_tuning_document(path);
  doc["format"] = "axle-tuning-1";
  nlohmann::json kept = nlohmann::json::array();
  if (doc.contains(operation))
    for (const auto& e : doc[operation])
      if (!replaced(e)) kept.push_back(e);
  for (const auto& e : fresh) kept.push_back(e);
  doc[operation] = kept;
  const std::size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = path.substr(0, slash);
    for (std::size_t i = 1; i <= dir.size(); ++i)
      if (i == dir.size() || dir[i] == '/') (void)::mkdir(dir.substr(0, i).c_str(), 0700);
  }
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << doc.dump(2) << "\n";
    if (!f) throw Error("tuning: cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw Error("tuning: cannot rename " + tmp + " to " + path);
  }
  reset_tuning_files();
}

const char* device_type_name(const DeviceInfo& info) {
  return info.type == DeviceType::CPU ? "cpu" : info.type == DeviceType::GPU ? "gpu" : "other";
}

std::string entry_string(const nlohmann::json& entry, const char* key, const char* fallback) {
  auto it = entry.find(key);
  if (it == entry.end() || !it->is_string()) return fallback;
  return it->get<std::string>();
}

int device_match_score(const nlohmann::json& entry, const DeviceInfo& info) {
  int score = 0;
  auto field = [&](const char* key, const std::string& have, int weight) {
    const std::string want = entry_string(entry, key, "*");
    if (want == "*" || want.empty()) return true;
    if (!iequal(want, have)) return false;
    score += weight;
    return true;
  };
  if (!field("device", info.name, 64)) return -1;
  if (!field("architecture", info.architecture, 32)) return -1;
  if (!field("vendor", info.vendor, 16)) return -1;
  if (!field("type", device_type_name(info), 8)) return -1;
  return score;
}

}  // namespace axle::kernels_detail
