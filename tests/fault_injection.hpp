// Fault injection for the backends' vendor-library tables (tests only).
//
// An Injector swaps entries of a backend's symbol table (axle::detail::cl::Api,
// axle::detail::cuda::DriverApi) for counting trampolines that forward to the real
// function, except the call chosen by arm(): that one returns the chosen native status
// without calling the library (a function that returns a handle sets its errcode_ret
// out-parameter and returns null). Nothing of this is in the library: the library only
// lets a test write its table, so an unarmed build pays nothing.
//
// Single-threaded use only: the table is swapped while no other thread calls the backend.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace axle_test::faults {

/// What the trampolines count and which call fails. Process-wide.
struct Plan {
  long long fail_at = 0;  ///< 1-based index of the interposed call to fail; 0: none
  long long status = 0;   ///< the native status that call returns
  /// Chooses the status from the failing call's name when set (overrides `status`).
  std::function<long long(const std::string& call)> status_for;
  long long calls = 0;           ///< interposed calls so far
  std::vector<const char*> log;  ///< their names, in order
  std::string fired;             ///< the call that was failed, empty while none
  long long fired_status = 0;
  std::string fired_after;  ///< the interposed call before it
  bool teardown = false;    ///< set by a test while it destroys objects
  bool fired_in_teardown = false;

  void reset() {
    fail_at = 0;
    status = 0;
    status_for = nullptr;
    calls = 0;
    log.clear();
    fired.clear();
    fired_status = 0;
    fired_after.clear();
    teardown = false;
    fired_in_teardown = false;
  }
  /// Successful calls per function since the Injector was made (arm() keeps them):
  /// creations against releases tell whether a handle leaked.
  std::map<std::string, long long> succeeded;

  /// Counts one call; true when this call is to fail.
  bool count(const char* name) {
    ++calls;
    log.push_back(name);
    if (fail_at == 0 || calls != fail_at) return false;
    fired = name;
    fired_status = status_for ? status_for(fired) : status;
    fired_after = log.size() >= 2 ? log[log.size() - 2] : "";
    fired_in_teardown = teardown;
    return true;
  }
};

inline Plan& plan() {
  static Plan p;
  return p;
}

/// Marks the scope as object teardown: a failure there is logged by a destructor,
/// never thrown.
class Teardown {
 public:
  Teardown() { plan().teardown = true; }
  ~Teardown() { plan().teardown = false; }
};

namespace detail {

template <typename Table, auto Member, typename Fn>
struct Trampoline;

template <typename Table, auto Member, typename R, typename... A>
struct Trampoline<Table, Member, R (*)(A...)> {
  static inline R (*real)(A...) = nullptr;
  static inline const char* name = "";
  static inline bool can_fail = true;

  static R forward(A... a) {
    R r = real(a...);
    bool ok;
    if constexpr (std::is_pointer_v<R>)
      ok = r != nullptr;
    else
      ok = static_cast<long long>(r) == 0;  // CL_SUCCESS, CUDA_SUCCESS
    if (ok) ++plan().succeeded[name];
    return r;
  }
  static R call(A... a) {
    if (!can_fail || !plan().count(name)) return forward(a...);
    const long long st = plan().fired_status;
    if constexpr (std::is_pointer_v<R>) {
      // A handle-returning OpenCL call: the status goes to errcode_ret, its last parameter.
      static_assert(sizeof...(A) > 0, "a handle-returning call without an errcode_ret parameter");
      auto* err = std::get<sizeof...(A) - 1>(std::forward_as_tuple(a...));
      using Err = std::remove_pointer_t<std::remove_reference_t<decltype(err)>>;
      if (err) *err = static_cast<Err>(st);
      return nullptr;
    } else {
      return static_cast<R>(st);
    }
  }
};

}  // namespace detail

/// Interposes table entries for its lifetime; restores them on destruction.
template <typename Table>
class Injector {
 public:
  explicit Injector(Table* table) : table_(table) {
    plan().reset();
    plan().succeeded.clear();
  }
  ~Injector() {
    for (auto& undo : undo_) undo();
    plan().reset();
    plan().succeeded.clear();
  }
  /// Successful calls of `name` so far.
  long long succeeded(const std::string& name) const {
    auto it = plan().succeeded.find(name);
    return it == plan().succeeded.end() ? 0 : it->second;
  }
  Injector(const Injector&) = delete;
  Injector& operator=(const Injector&) = delete;

  /// Interpose `Member` (e.g. &cl::Api::clCreateBuffer), named `name` in the log.
  /// With can_fail false the call is neither counted nor failed, only its successes
  /// tallied (releases: failing them would leak by construction).
  template <auto Member>
  void interpose(const char* name, bool can_fail = true) {
    auto& slot = table_->*Member;
    using Fn = std::remove_reference_t<decltype(slot)>;
    using T = detail::Trampoline<Table, Member, Fn>;
    if (!slot || slot == &T::call) return;  // absent optional entry, or already interposed
    T::real = slot;
    T::name = name;
    T::can_fail = can_fail;
    slot = &T::call;
    Table* t = table_;
    undo_.push_back([t] { t->*Member = T::real; });
  }

  /// Fail the n-th interposed call from now (1-based) with `status`; 0 disarms.
  void arm(long long n, long long status) {
    plan().reset();
    plan().fail_at = n;
    plan().status = status;
  }
  /// As arm(), with the status chosen from the failing call's name.
  void arm(long long n, std::function<long long(const std::string&)> status_for) {
    plan().reset();
    plan().fail_at = n;
    plan().status_for = std::move(status_for);
  }
  /// Count from zero with nothing armed.
  void disarm() { plan().reset(); }

  long long calls() const { return plan().calls; }
  bool fired() const { return !plan().fired.empty(); }
  const std::string& fired_call() const { return plan().fired; }

 private:
  Table* table_;
  std::vector<std::function<void()>> undo_;
};

}  // namespace axle_test::faults
