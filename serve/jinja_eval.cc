#include "serve/jinja_eval.h"

#include <fmt/core.h>

#include <algorithm>

#include "serve/jinja_budget.h"
#include "serve/jinja_builtins.h"
#include "serve/jinja_operators.h"

namespace spillway::serve::jinja {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

Error runtime_error(SourcePos pos, std::string message) {
  return locate(pos, Error(ErrorCode::kFailedPrecondition, std::move(message)));
}

// Adds the position to errors of builtins and operators. raise_exception's error
// (kInvalidArgument) keeps the template's message as it is.
template <typename T>
Result<T> at(SourcePos pos, Result<T> r) {
  if (r.ok() || r.error().code() == ErrorCode::kInvalidArgument) return r;
  return locate(pos, r.error());
}

Status at(SourcePos pos, Status s) {
  if (s.ok() || s.code() == ErrorCode::kInvalidArgument) return s;
  return locate(pos, s.error());
}

class Evaluator {
 public:
  explicit Evaluator(const RenderOptions& options)
      : budget_(options.limits), unix_time_s_(options.unix_time_s) {}

  Result<std::string> run(const Program& program, const Variables& variables) {
    Frame globals;
    for (const auto& [name, value] : variables)
      globals.set(name, value);
    for (const std::string_view name : global_function_names(unix_time_s_.has_value())) {
      if (globals.find(name) != nullptr) continue;
      Callable c;
      c.kind = Callable::Kind::kGlobal;
      c.name = std::string(name);
      globals.set(name, Value::callable(std::move(c)));
    }
    frames_.push_back(std::move(globals));
    frames_.emplace_back();  // The template's top-level scope.
    SPW_TRY(exec_body(program.body).status());
    return std::move(out_);
  }

 private:
  struct Frame {
    std::vector<std::pair<std::string, Value>> vars;
    bool barrier = false;  // A macro call: names below resolve in the two outermost frames.

    const Value* find(std::string_view name) const {
      for (const auto& [n, v] : vars)
        if (n == name) return &v;
      return nullptr;
    }
    void set(std::string_view name, Value value) {
      for (auto& [n, v] : vars) {
        if (n == name) {
          v = std::move(value);
          return;
        }
      }
      vars.emplace_back(std::string(name), std::move(value));
    }
  };

  // Pops the frame pushed before it, on every path.
  class FrameScope {
   public:
    FrameScope(std::vector<Frame>* frames, bool barrier) : frames_(frames) {
      frames_->emplace_back();
      frames_->back().barrier = barrier;
    }
    ~FrameScope() { frames_->pop_back(); }
    FrameScope(const FrameScope&) = delete;
    FrameScope& operator=(const FrameScope&) = delete;

   private:
    std::vector<Frame>* frames_;
  };

  // Recursion depth for one nested evaluation.
  class Depth {
   public:
    explicit Depth(Budget* budget) : budget_(budget) {}
    ~Depth() {
      if (entered_) budget_->leave();
    }
    Status enter() {
      SPW_TRY(budget_->enter());
      entered_ = true;
      return {};
    }
    Depth(const Depth&) = delete;
    Depth& operator=(const Depth&) = delete;

   private:
    Budget* budget_;
    bool entered_ = false;
  };

  // Output is written to `out_`; macro calls and set blocks capture it by swapping.
  class Capture {
   public:
    explicit Capture(std::string* out) : out_(out) { saved_.swap(*out_); }
    ~Capture() { saved_.swap(*out_); }
    std::string take() { return std::move(*out_); }
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;

   private:
    std::string* out_;
    std::string saved_;
  };

  Value lookup(std::string_view name) const {
    for (std::size_t i = frames_.size(); i-- > 0;) {
      if (const Value* v = frames_[i].find(name)) return *v;
      if (frames_[i].barrier) {
        for (std::size_t j = std::min<std::size_t>(2, i); j-- > 0;)
          if (const Value* v = frames_[j].find(name)) return *v;
        break;
      }
    }
    return Value::undefined(fmt::format("'{}' is undefined", name));
  }

  Status emit(std::string_view text) {
    if (out_.size() + text.size() > budget_.limits().max_output_bytes) {
      return make_error(ErrorCode::kOutOfRange, "template output exceeds the limit of {} bytes",
                        budget_.limits().max_output_bytes);
    }
    SPW_TRY(budget_.step(text.size() / 64));
    out_ += text;
    return {};
  }

  // --- Statements ---------------------------------------------------------------------------

  Result<Flow> exec_body(const Body& body) {
    for (const StmtPtr& s : body) {
      SPW_ASSIGN_OR_RETURN(const Flow flow, exec(*s));
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  // As eval(): one out-of-line function per kind of statement keeps each frame small.
  Result<Flow> exec(const Stmt& s) {
    Depth depth(&budget_);
    SPW_TRY(at(s.pos, depth.enter()));
    SPW_TRY(at(s.pos, budget_.step()));
    switch (s.kind) {
      case StmtKind::kText:
        SPW_TRY(at(s.pos, emit(s.text)));
        return Flow::kNormal;
      case StmtKind::kOutput:
        return exec_output(s);
      case StmtKind::kIf:
        return exec_if(s);
      case StmtKind::kFor:
        return exec_for(s);
      case StmtKind::kSet:
        return exec_set(s);
      case StmtKind::kSetBlock:
        return exec_set_block(s);
      case StmtKind::kMacro: {
        Callable c;
        c.kind = Callable::Kind::kMacro;
        c.name = s.name;
        c.macro = &s;
        frames_.back().set(s.name, Value::callable(std::move(c)));
        return Flow::kNormal;
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
      case StmtKind::kFilterBlock:
        return exec_filter_block(s);
      case StmtKind::kScope:
        return exec_body(s.body);
    }
    return Flow::kNormal;
  }

  [[gnu::noinline]] Result<Flow> exec_output(const Stmt& s) {
    SPW_ASSIGN_OR_RETURN(const Value v, eval(*s.expr));
    if (v.is_string()) {
      SPW_TRY(at(s.pos, emit(v.as_string())));
    } else {
      std::string text;
      SPW_TRY(at(s.pos, append_str(v, &text, budget_.limits().max_output_bytes)));
      SPW_TRY(at(s.pos, emit(text)));
    }
    return Flow::kNormal;
  }

  [[gnu::noinline]] Result<Flow> exec_if(const Stmt& s) {
    for (const IfBranch& branch : s.branches) {
      SPW_ASSIGN_OR_RETURN(const Value c, eval(*branch.condition));
      if (truthy(c)) return exec_body(branch.body);
    }
    return exec_body(s.else_body);
  }

  [[gnu::noinline]] Result<Flow> exec_set(const Stmt& s) {
    SPW_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
    SPW_TRY(assign(s, std::move(v)));
    return Flow::kNormal;
  }

  [[gnu::noinline]] Result<Flow> exec_set_block(const Stmt& s) {
    std::string text;
    {
      Capture capture(&out_);
      SPW_TRY(exec_body(s.body).status());
      text = capture.take();
    }
    SPW_TRY(assign(s, Value::string(std::move(text))));
    return Flow::kNormal;
  }

  [[gnu::noinline]] Result<Flow> exec_filter_block(const Stmt& s) {
    std::string text;
    {
      Capture capture(&out_);
      SPW_TRY(exec_body(s.body).status());
      text = capture.take();
    }
    SPW_ASSIGN_OR_RETURN(const Value v, apply_filter_chain(*s.expr, Value::string(text)));
    SPW_ASSIGN_OR_RETURN(const std::string rendered,
                         at(s.pos, to_str(v, budget_.limits().max_output_bytes)));
    SPW_TRY(at(s.pos, emit(rendered)));
    return Flow::kNormal;
  }

  // Binds `value` to the loop or set targets: one name, or several unpacked from a sequence.
  Status bind_targets(const std::vector<std::string>& targets, const Value& value, SourcePos pos) {
    if (targets.size() == 1) {
      frames_.back().set(targets[0], value);
      return {};
    }
    if (!value.is_list()) {
      return runtime_error(pos, fmt::format("cannot unpack non-sequence {}", type_name(value)));
    }
    const auto& items = value.as_list().items;
    if (items.size() != targets.size()) {
      return runtime_error(pos,
                           fmt::format("{} values to unpack (expected {}, got {})",
                                       items.size() < targets.size() ? "not enough" : "too many",
                                       targets.size(), items.size()));
    }
    for (std::size_t i = 0; i < targets.size(); ++i)
      frames_.back().set(targets[i], items[i]);
    return {};
  }

  Status assign(const Stmt& s, Value value) {
    if (s.attribute.empty()) return bind_targets(s.targets, value, s.pos);
    const Value target = lookup(s.targets[0]);
    if (target.kind() != Value::Kind::kNamespace) {
      return runtime_error(s.pos, fmt::format("cannot assign attribute on non-namespace object "
                                              "'{}'",
                                              s.targets[0]));
    }
    if (contains_namespace(value))
      return runtime_error(s.pos, "a namespace cannot hold another namespace");
    if (value.depth() + 1 > budget_.limits().max_nesting_depth)
      return at(s.pos, budget_.nesting(Value::list({value})));
    target.as_namespace().set(s.attribute, std::move(value));
    return {};
  }

  // loop.depth counts recursive loops only, which are not supported: it is always 1.
  Value loop_object(const std::vector<Value>& items, std::size_t i) {
    const auto n = static_cast<std::int64_t>(items.size());
    const auto k = static_cast<std::int64_t>(i);
    Callable cycle;
    cycle.kind = Callable::Kind::kLoopCycle;
    cycle.name = "cycle";
    cycle.receiver = Value::integer(k);
    std::vector<std::pair<Value, Value>> fields = {
        {Value::string("index"), Value::integer(k + 1)},
        {Value::string("index0"), Value::integer(k)},
        {Value::string("revindex"), Value::integer(n - k)},
        {Value::string("revindex0"), Value::integer(n - k - 1)},
        {Value::string("first"), Value::boolean(i == 0)},
        {Value::string("last"), Value::boolean(i + 1 == items.size())},
        {Value::string("length"), Value::integer(n)},
        {Value::string("depth"), Value::integer(1)},
        {Value::string("depth0"), Value::integer(0)},
        {Value::string("previtem"),
         i > 0 ? items[i - 1] : Value::undefined("there is no previous item")},
        {Value::string("nextitem"),
         i + 1 < items.size() ? items[i + 1] : Value::undefined("there is no next item")},
        {Value::string("cycle"), Value::callable(std::move(cycle))},
    };
    return Value::dict(std::move(fields));
  }

  [[gnu::noinline]] Result<Flow> exec_for(const Stmt& s) {
    SPW_ASSIGN_OR_RETURN(const Value iterable, eval(*s.expr));
    SPW_ASSIGN_OR_RETURN(std::vector<Value> items, at(s.pos, iterate(iterable, budget_)));
    if (s.condition) {
      std::vector<Value> kept;
      for (Value& item : items) {
        SPW_TRY(at(s.pos, budget_.loop_iteration()));
        FrameScope frame(&frames_, false);
        SPW_TRY(bind_targets(s.targets, item, s.pos));
        SPW_ASSIGN_OR_RETURN(const Value keep, eval(*s.condition));
        if (truthy(keep)) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec_body(s.else_body);
    Flow result = Flow::kNormal;
    Status failed;
    for (std::size_t i = 0; i < items.size(); ++i) {
      failed = at(s.pos, budget_.loop_iteration());
      if (!failed.ok()) break;
      FrameScope frame(&frames_, false);
      failed = bind_targets(s.targets, items[i], s.pos);
      if (!failed.ok()) break;
      frames_.back().set("loop", loop_object(items, i));
      auto flow = exec_body(s.body);
      if (!flow.ok()) {
        failed = flow.status();
        break;
      }
      if (*flow == Flow::kBreak) break;
    }
    SPW_TRY(failed);
    return result;
  }

  // --- Expressions --------------------------------------------------------------------------

  // eval() dispatches to one function per kind of expression, kept out of line so that the
  // frame of each level of recursion holds only what that level needs (with sanitizers, a
  // single large function would need kilobytes of stack per level).
  Result<Value> eval(const Expr& e) {
    Depth depth(&budget_);
    SPW_TRY(at(e.pos, depth.enter()));
    SPW_TRY(at(e.pos, budget_.step()));
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.value;
      case ExprKind::kName:
        return lookup(e.name);
      case ExprKind::kList:
      case ExprKind::kTuple:
        return eval_sequence(e);
      case ExprKind::kDict:
        return eval_dict(e);
      case ExprKind::kGetAttr:
        return eval_get_attr(e);
      case ExprKind::kGetItem:
        return eval_get_item(e);
      case ExprKind::kSlice:
        return eval_slice(e);
      case ExprKind::kCall:
        return eval_call(e);
      case ExprKind::kFilter:
        return eval_filter(e);
      case ExprKind::kTest:
        return eval_test(e);
      case ExprKind::kUnary:
        return eval_unary(e);
      case ExprKind::kBinary:
        return eval_binary(e);
      case ExprKind::kCompare:
        return eval_compare(e);
      case ExprKind::kCondition:
        return eval_condition(e);
    }
    return runtime_error(e.pos, "unknown expression");
  }

  [[gnu::noinline]] Result<Value> eval_sequence(const Expr& e) {
    std::vector<Value> items;
    items.reserve(e.children.size());
    for (const ExprPtr& c : e.children) {
      SPW_ASSIGN_OR_RETURN(Value v, eval(*c));
      items.push_back(std::move(v));
    }
    SPW_TRY(at(e.pos, budget_.items(items.size())));
    Value list = Value::list(std::move(items),
                             e.kind == ExprKind::kTuple ? ListKind::kTuple : ListKind::kList);
    SPW_TRY(at(e.pos, budget_.nesting(list)));
    return list;
  }

  [[gnu::noinline]] Result<Value> eval_get_attr(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(const Value obj, eval(*e.children[0]));
    return at(e.pos, get_attribute(obj, e.name));
  }

  [[gnu::noinline]] Result<Value> eval_get_item(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(const Value obj, eval(*e.children[0]));
    SPW_ASSIGN_OR_RETURN(const Value key, eval(*e.children[1]));
    return at(e.pos, get_item(obj, key));
  }

  [[gnu::noinline]] Result<Value> eval_slice(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(const Value obj, eval(*e.children[0]));
    Value bounds[3];
    const Value* present[3] = {nullptr, nullptr, nullptr};
    for (std::size_t k = 0; k < 3; ++k) {
      if (!e.children[k + 1]) continue;
      SPW_ASSIGN_OR_RETURN(bounds[k], eval(*e.children[k + 1]));
      present[k] = &bounds[k];
    }
    return at(e.pos, get_slice(obj, present[0], present[1], present[2], budget_));
  }

  [[gnu::noinline]] Result<Value> eval_filter(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(const Value operand, eval(*e.children[0]));
    SPW_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
    return at(e.pos, apply_filter(e.name, operand, std::move(args), budget_));
  }

  [[gnu::noinline]] Result<Value> eval_test(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(const Value operand, eval(*e.children[0]));
    SPW_ASSIGN_OR_RETURN(const CallArgs args, eval_args(e));
    SPW_ASSIGN_OR_RETURN(const bool passed, at(e.pos, apply_test(e.name, operand, args, budget_)));
    return Value::boolean(passed != e.negated);
  }

  [[gnu::noinline]] Result<Value> eval_unary(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(const Value operand, eval(*e.children[0]));
    if (e.op == Op::kNot) return Value::boolean(!truthy(operand));
    return at(e.pos, unary_op(e.op, operand));
  }

  [[gnu::noinline]] Result<Value> eval_binary(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(Value left, eval(*e.children[0]));
    // and/or return an operand, as in Python.
    if (e.op == Op::kAnd) return truthy(left) ? eval(*e.children[1]) : left;
    if (e.op == Op::kOr) return truthy(left) ? left : eval(*e.children[1]);
    SPW_ASSIGN_OR_RETURN(const Value right, eval(*e.children[1]));
    return at(e.pos, binary_op(e.op, left, right, budget_));
  }

  [[gnu::noinline]] Result<Value> eval_compare(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(Value left, eval(*e.children[0]));
    for (std::size_t k = 0; k < e.ops.size(); ++k) {
      SPW_ASSIGN_OR_RETURN(Value right, eval(*e.children[k + 1]));
      SPW_ASSIGN_OR_RETURN(const bool holds, at(e.pos, compare_op(e.ops[k], left, right)));
      if (!holds) return Value::boolean(false);
      left = std::move(right);
    }
    return Value::boolean(true);
  }

  [[gnu::noinline]] Result<Value> eval_condition(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(const Value condition, eval(*e.children[1]));
    if (truthy(condition)) return eval(*e.children[0]);
    if (!e.children[2]) return Value::undefined("the inline if had no else");
    return eval(*e.children[2]);
  }

  [[gnu::noinline]] Result<Value> eval_dict(const Expr& e) {
    std::vector<std::pair<Value, Value>> items;
    for (std::size_t k = 0; k + 1 < e.children.size(); k += 2) {
      SPW_ASSIGN_OR_RETURN(Value key, eval(*e.children[k]));
      SPW_ASSIGN_OR_RETURN(Value value, eval(*e.children[k + 1]));
      if (!key.is_string() && !key.is_number() && !key.is_none()) {
        return runtime_error(e.children[k]->pos,
                             fmt::format("unhashable type: '{}'", type_name(key)));
      }
      auto existing = std::find_if(items.begin(), items.end(),
                                   [&](const auto& item) { return equals(item.first, key); });
      if (existing != items.end()) {
        existing->second = std::move(value);
      } else {
        items.emplace_back(std::move(key), std::move(value));
      }
    }
    SPW_TRY(at(e.pos, budget_.items(items.size())));
    Value dict = Value::dict(std::move(items));
    SPW_TRY(at(e.pos, budget_.nesting(dict)));
    return dict;
  }

  // Arguments of a call, filter or test: children after the first, and the keywords.
  Result<CallArgs> eval_args(const Expr& e) {
    CallArgs args;
    for (std::size_t k = 1; k < e.children.size(); ++k) {
      SPW_ASSIGN_OR_RETURN(Value v, eval(*e.children[k]));
      args.positional.push_back(std::move(v));
    }
    for (const auto& [name, value_expr] : e.kwargs) {
      SPW_ASSIGN_OR_RETURN(Value v, eval(*value_expr));
      args.keyword.emplace_back(name, std::move(v));
    }
    return args;
  }

  Result<Value> apply_filter_chain(const Expr& e, Value input) {
    Value operand = std::move(input);
    if (e.children[0]) {
      SPW_ASSIGN_OR_RETURN(operand, apply_filter_chain(*e.children[0], operand));
    }
    SPW_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
    return at(e.pos, apply_filter(e.name, operand, std::move(args), budget_));
  }

  [[gnu::noinline]] Result<Value> eval_call(const Expr& e) {
    SPW_ASSIGN_OR_RETURN(const Value callee, eval(*e.children[0]));
    SPW_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
    if (callee.kind() != Value::Kind::kCallable) {
      if (callee.is_undefined()) return runtime_error(e.pos, callee.undefined_message());
      return runtime_error(e.pos, fmt::format("'{}' object is not callable", type_name(callee)));
    }
    const Callable& c = callee.as_callable();
    switch (c.kind) {
      case Callable::Kind::kGlobal:
        return at(e.pos, call_global(c.name, std::move(args), budget_, unix_time_s_));
      case Callable::Kind::kMethod:
        return at(e.pos, call_method(c.receiver, c.name, std::move(args), budget_));
      case Callable::Kind::kMacro:
        return call_macro(*c.macro, std::move(args), e.pos);
      case Callable::Kind::kLoopCycle: {
        if (args.positional.empty() || !args.keyword.empty())
          return runtime_error(e.pos, "loop.cycle() takes one or more positional arguments");
        const auto n = static_cast<std::int64_t>(args.positional.size());
        return args.positional[static_cast<std::size_t>(c.receiver.as_int() % n)];
      }
    }
    return runtime_error(e.pos, "unknown function");
  }

  [[gnu::noinline]] Result<Value> call_macro(const Stmt& macro, CallArgs args, SourcePos pos) {
    if (args.positional.size() > macro.params.size()) {
      return runtime_error(pos, fmt::format("macro '{}' takes not more than {} argument(s)",
                                            macro.name, macro.params.size()));
    }
    for (const auto& keyword : args.keyword) {
      const bool known = std::any_of(macro.params.begin(), macro.params.end(),
                                     [&](const MacroParam& p) { return p.name == keyword.first; });
      if (!known) {
        return runtime_error(
            pos, fmt::format("macro '{}' has no parameter named '{}'", macro.name, keyword.first));
      }
    }
    FrameScope frame(&frames_, /*barrier=*/true);
    for (std::size_t k = 0; k < macro.params.size(); ++k) {
      const MacroParam& p = macro.params[k];
      Value v;
      bool given = false;
      if (k < args.positional.size()) {
        v = std::move(args.positional[k]);
        given = true;
      }
      for (auto& [name, value] : args.keyword) {
        if (name != p.name) continue;
        if (given)
          return runtime_error(
              pos, fmt::format("macro '{}' got multiple values for '{}'", macro.name, name));
        v = std::move(value);
        given = true;
      }
      if (!given) {
        if (p.default_value) {
          SPW_ASSIGN_OR_RETURN(v, eval(*p.default_value));
        } else {
          v = Value::undefined(fmt::format("parameter '{}' was not provided", p.name));
        }
      }
      frames_.back().set(p.name, std::move(v));
    }
    std::string text;
    {
      Capture capture(&out_);
      SPW_TRY(exec_body(macro.body).status());
      text = capture.take();
    }
    return Value::string(std::move(text));
  }

  Budget budget_;
  std::optional<std::int64_t> unix_time_s_;
  std::vector<Frame> frames_;
  std::string out_;
};

}  // namespace

Result<std::string> render(const Program& program, const Variables& variables,
                           const RenderOptions& options) {
  return Evaluator(options).run(program, variables);
}

}  // namespace spillway::serve::jinja
