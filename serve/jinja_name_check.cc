#include "serve/jinja_name_check.h"

#include <fmt/core.h>

#include "serve/jinja_builtins.h"

namespace spillway::serve::jinja {
namespace {

Status check(const Body& body, bool soft);

Status check(const Expr* e, bool soft) {
  if (e == nullptr) return {};
  if (e->kind == ExprKind::kCondition) soft = true;
  if (!soft && e->kind == ExprKind::kFilter && !is_filter(e->name))
    return syntax_error(e->pos, fmt::format("no filter named '{}'", e->name));
  if (!soft && e->kind == ExprKind::kTest && !is_test(e->name))
    return syntax_error(e->pos, fmt::format("no test named '{}'", e->name));
  for (const ExprPtr& c : e->children)
    SPW_TRY(check(c.get(), soft));
  for (const auto& kw : e->kwargs)
    SPW_TRY(check(kw.second.get(), soft));
  return {};
}

Status check(const Stmt& s, bool soft) {
  switch (s.kind) {
    case StmtKind::kIf:
      for (const IfBranch& b : s.branches) {
        SPW_TRY(check(b.condition.get(), true));
        SPW_TRY(check(b.body, true));
      }
      return check(s.else_body, true);
    case StmtKind::kFor:
      // The iterable and the else branch are in the enclosing scope; the filter condition and
      // the body in the loop's own.
      SPW_TRY(check(s.expr.get(), soft));
      SPW_TRY(check(s.condition.get(), false));
      SPW_TRY(check(s.body, false));
      return check(s.else_body, soft);
    case StmtKind::kMacro:
      for (const MacroParam& p : s.params)
        SPW_TRY(check(p.default_value.get(), false));
      return check(s.body, false);
    case StmtKind::kSetBlock:
      return check(s.body, false);
    case StmtKind::kFilterBlock:
      SPW_TRY(check(s.expr.get(), false));
      return check(s.body, false);
    case StmtKind::kScope:
      return check(s.body, soft);
    default:
      return check(s.expr.get(), soft);
  }
}

Status check(const Body& body, bool soft) {
  for (const StmtPtr& s : body)
    SPW_TRY(check(*s, soft));
  return {};
}

}  // namespace

Status check_filter_and_test_names(const Program& program) {
  return check(program.body, false);
}

}  // namespace spillway::serve::jinja
