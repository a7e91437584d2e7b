// Internal: a small JSON reader and writer for the tuning files (objects, arrays,
// strings, numbers, booleans, null). Values are plain data; no shared state.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace axle::blas::detail {

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;  // in file order

  const JsonValue* find(const std::string& key) const {
    for (const auto& kv : object)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    const JsonValue* v = find(key);
    return v && v->kind == Kind::String ? v->string : fallback;
  }
  double get_number(const std::string& key, double fallback) const {
    const JsonValue* v = find(key);
    return v && v->kind == Kind::Number ? v->number : fallback;
  }
};

/// Thrown with the byte offset and what was expected.
struct JsonSyntaxError : std::runtime_error {
  JsonSyntaxError(const std::string& what, std::size_t line) : std::runtime_error(what), line(line) {}
  std::size_t line;
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : s_(text) {}
  JsonValue parse() {
    JsonValue v = value();
    ws();
    if (i_ != s_.size()) fail("trailing characters after the top-level value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) {
    std::size_t line = 1;
    for (std::size_t j = 0; j < i_ && j < s_.size(); ++j)
      if (s_[j] == '\n') ++line;
    throw JsonSyntaxError(msg, line);
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  std::string str() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c == '\\') {
        if (i_ >= s_.size()) fail("unterminated escape");
        char e = s_[i_++];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'u': {
            if (i_ + 4 > s_.size()) fail("bad \\u escape");
            unsigned cp = std::stoul(s_.substr(i_, 4), nullptr, 16);
            i_ += 4;
            if (cp < 0x80) {
              out += static_cast<char>(cp);
            } else if (cp < 0x800) {
              out += static_cast<char>(0xC0 | (cp >> 6));
              out += static_cast<char>(0x80 | (cp & 0x3F));
            } else {
              out += static_cast<char>(0xE0 | (cp >> 12));
              out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
              out += static_cast<char>(0x80 | (cp & 0x3F));
            }
            break;
          }
          default: out += e;
        }
      } else {
        out += c;
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  JsonValue value() {
    ws();
    if (i_ >= s_.size()) fail("unexpected end of input");
    JsonValue v;
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = JsonValue::Kind::Object;
      if (eat('}')) return v;
      do {
        ws();
        std::string key = str();
        expect(':');
        v.object.emplace_back(key, value());
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.kind = JsonValue::Kind::Array;
      if (eat(']')) return v;
      do v.array.push_back(value());
      while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.kind = JsonValue::Kind::String;
      v.string = str();
    } else if (s_.compare(i_, 4, "true") == 0) {
      i_ += 4;
      v.kind = JsonValue::Kind::Bool;
      v.boolean = true;
    } else if (s_.compare(i_, 5, "false") == 0) {
      i_ += 5;
      v.kind = JsonValue::Kind::Bool;
    } else if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
    } else {
      std::size_t used = 0;
      try {
        v.number = std::stod(s_.substr(i_, 64), &used);
      } catch (const std::exception&) {
        fail("expected a value");
      }
      i_ += used;
      v.kind = JsonValue::Kind::Number;
    }
    return v;
  }
  const std::string& s_;
  std::size_t i_ = 0;
};

inline std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace axle::blas::detail
