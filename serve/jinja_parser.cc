#include "serve/jinja_parser.h"

#include <fmt/core.h>

#include <algorithm>
#include <initializer_list>

#include "serve/jinja_lexer.h"
#include "serve/jinja_name_check.h"

namespace spillway::serve::jinja {
namespace {

using Names = std::initializer_list<std::string_view>;

bool contains_name(Names names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::kText:
      return "template text";
    case TokenKind::kVariableBegin:
      return "'{{'";
    case TokenKind::kVariableEnd:
      return "'}}'";
    case TokenKind::kBlockBegin:
      return "'{%'";
    case TokenKind::kBlockEnd:
      return "'%}'";
    case TokenKind::kName:
    case TokenKind::kOperator:
      return fmt::format("'{}'", t.text);
    case TokenKind::kString:
      return "a string";
    case TokenKind::kInteger:
    case TokenKind::kFloat:
      return "a number";
    case TokenKind::kEnd:
      return "end of template";
  }
  return "token";
}

// Decrements a depth counter when a nested construct ends.
class DepthScope {
 public:
  explicit DepthScope(std::size_t* depth) : depth_(depth) {}
  ~DepthScope() { --*depth_; }
  DepthScope(const DepthScope&) = delete;
  DepthScope& operator=(const DepthScope&) = delete;

 private:
  std::size_t* depth_;
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, const JinjaLimits& limits)
      : tokens_(std::move(tokens)), limits_(limits) {}

  Result<Program> run() {
    Program program;
    SPW_ASSIGN_OR_RETURN(program.body, parse_body({}, SourcePos(), ""));
    SPW_TRY(check_filter_and_test_names(program));
    return program;
  }

 private:
  // --- Token access -------------------------------------------------------------------------

  const Token& cur() const { return tokens_[i_]; }
  const Token& peek() const { return tokens_[std::min(i_ + 1, tokens_.size() - 1)]; }
  void advance() {
    if (cur().kind != TokenKind::kEnd) ++i_;
  }
  bool is_op(std::string_view op) const {
    return cur().kind == TokenKind::kOperator && cur().text == op;
  }
  bool is_name(std::string_view name) const {
    return cur().kind == TokenKind::kName && cur().text == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }

  Error unexpected(std::string_view expected) const {
    return syntax_error(cur().pos,
                        fmt::format("unexpected {}, expected {}", describe(cur()), expected));
  }
  Status expect_op(std::string_view op) {
    if (!skip_op(op)) return unexpected(fmt::format("'{}'", op));
    return {};
  }
  Status expect_block_end() {
    if (cur().kind != TokenKind::kBlockEnd) return unexpected("'%}'");
    advance();
    return {};
  }
  Result<std::string> expect_name() {
    if (cur().kind != TokenKind::kName) return unexpected("a name");
    std::string name = cur().text;
    advance();
    return name;
  }

  Status enter(std::size_t* depth) const {
    if (++*depth > limits_.max_nesting_depth) {
      --*depth;
      return make_error(ErrorCode::kOutOfRange, "{}:{}: template nested deeper than {}",
                        cur().pos.line, cur().pos.column, limits_.max_nesting_depth);
    }
    return {};
  }

  // --- Statements ---------------------------------------------------------------------------

  // Statements up to a `{% name %}` with name in `ends`, left unconsumed (the current token is
  // that name). With no `ends`, up to the end of the template.
  Result<Body> parse_body(Names ends, SourcePos opener, std::string_view opener_name) {
    Body body;
    while (true) {
      const Token& t = cur();
      switch (t.kind) {
        case TokenKind::kText: {
          auto s = std::make_unique<Stmt>();
          s->kind = StmtKind::kText;
          s->pos = t.pos;
          s->text = t.text;
          body.push_back(std::move(s));
          advance();
          break;
        }
        case TokenKind::kVariableBegin: {
          auto s = std::make_unique<Stmt>();
          s->kind = StmtKind::kOutput;
          s->pos = t.pos;
          advance();
          SPW_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, {}, false));
          if (cur().kind != TokenKind::kVariableEnd) return unexpected("'}}'");
          advance();
          body.push_back(std::move(s));
          break;
        }
        case TokenKind::kBlockBegin: {
          const Token& name = peek();
          advance();
          if (name.kind == TokenKind::kName && contains_name(ends, name.text)) return body;
          SPW_ASSIGN_OR_RETURN(StmtPtr s, parse_statement());
          body.push_back(std::move(s));
          break;
        }
        case TokenKind::kEnd: {
          if (ends.size() == 0) return body;
          std::string expected;
          for (const std::string_view e : ends)
            expected += fmt::format("{}'{}'", expected.empty() ? "" : " or ", e);
          return syntax_error(
              t.pos, fmt::format("unexpected end of template, expected {} to close the '{}' "
                                 "at {}:{}",
                                 expected, opener_name, opener.line, opener.column));
        }
        default:
          return unexpected("a statement");
      }
    }
  }

  // The current token is the tag name after '{%'.
  Result<StmtPtr> parse_statement() {
    if (cur().kind != TokenKind::kName) return unexpected("a tag name");
    const std::string tag = cur().text;
    auto s = std::make_unique<Stmt>();
    s->pos = cur().pos;
    if (tag == "if") return parse_if(std::move(s));
    if (tag == "for") return parse_for(std::move(s));
    if (tag == "set") return parse_set(std::move(s));
    if (tag == "macro") return parse_macro(std::move(s));
    if (tag == "filter") return parse_filter_block(std::move(s));
    if (tag == "generation") {
      advance();
      SPW_TRY(expect_block_end());
      s->kind = StmtKind::kScope;
      SPW_TRY(parse_nested_body(s.get(), {"endgeneration"}, "generation"));
      return s;
    }
    if (tag == "print") {
      advance();
      s->kind = StmtKind::kOutput;
      SPW_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, {}, false));
      SPW_TRY(expect_block_end());
      return s;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0)
        return syntax_error(cur().pos, fmt::format("'{}' outside of a loop", tag));
      advance();
      s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      SPW_TRY(expect_block_end());
      return s;
    }
    const Names kUnsupported = {"extends", "block", "include",    "import", "from",
                                "call",    "with",  "autoescape", "do",     "trans"};
    if (contains_name(kUnsupported, tag))
      return syntax_error(cur().pos, fmt::format("the '{}' tag is not supported", tag));
    const Names kClosers = {"elif",   "else",     "endif",     "endfor",
                            "endset", "endmacro", "endfilter", "endgeneration",
                            "endraw", "endblock", "endwith"};
    if (contains_name(kClosers, tag))
      return syntax_error(cur().pos, fmt::format("unexpected '{}'", tag));
    return syntax_error(cur().pos, fmt::format("unknown tag '{}'", tag));
  }

  // Parses the body of `s` up to one of `ends` and consumes that closing tag when it is the
  // final one (the only one in `ends`).
  Status parse_nested_body(Stmt* s, Names ends, std::string_view opener) {
    SPW_TRY(enter(&block_depth_));
    DepthScope scope(&block_depth_);
    SPW_ASSIGN_OR_RETURN(s->body, parse_body(ends, s->pos, opener));
    advance();
    return expect_block_end();
  }

  Result<StmtPtr> parse_if(StmtPtr s) {
    s->kind = StmtKind::kIf;
    SPW_TRY(enter(&block_depth_));
    DepthScope scope(&block_depth_);
    advance();
    IfBranch branch;
    SPW_ASSIGN_OR_RETURN(branch.condition, parse_tuple(false, {}, false));
    SPW_TRY(expect_block_end());
    const Names kEnds = {"elif", "else", "endif"};
    SPW_ASSIGN_OR_RETURN(branch.body, parse_body(kEnds, s->pos, "if"));
    s->branches.push_back(std::move(branch));
    while (true) {
      const std::string tag = cur().text;
      advance();
      if (tag == "elif") {
        IfBranch next;
        SPW_ASSIGN_OR_RETURN(next.condition, parse_tuple(false, {}, false));
        SPW_TRY(expect_block_end());
        SPW_ASSIGN_OR_RETURN(next.body, parse_body(kEnds, s->pos, "if"));
        s->branches.push_back(std::move(next));
      } else if (tag == "else") {
        SPW_TRY(expect_block_end());
        SPW_ASSIGN_OR_RETURN(s->else_body, parse_body({"endif"}, s->pos, "if"));
        advance();
        SPW_TRY(expect_block_end());
        return s;
      } else {
        SPW_TRY(expect_block_end());
        return s;
      }
    }
  }

  Result<std::vector<std::string>> parse_targets() {
    std::vector<std::string> targets;
    const bool parenthesized = skip_op("(");
    do {
      if (parenthesized && is_op(")")) break;
      SPW_ASSIGN_OR_RETURN(std::string name, expect_name());
      targets.push_back(std::move(name));
    } while (skip_op(","));
    if (parenthesized) SPW_TRY(expect_op(")"));
    return targets;
  }

  Result<StmtPtr> parse_for(StmtPtr s) {
    s->kind = StmtKind::kFor;
    SPW_TRY(enter(&block_depth_));
    DepthScope scope(&block_depth_);
    advance();
    SPW_ASSIGN_OR_RETURN(s->targets, parse_targets());
    if (!skip_name("in")) return unexpected("'in'");
    SPW_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, {"recursive"}, false));
    if (skip_name("if")) {
      SPW_ASSIGN_OR_RETURN(s->condition, parse_expression(true));
    }
    if (is_name("recursive")) return syntax_error(cur().pos, "recursive loops are not supported");
    SPW_TRY(expect_block_end());
    ++loop_depth_;
    auto body = parse_body({"endfor", "else"}, s->pos, "for");
    --loop_depth_;
    SPW_TRY(body.status());
    s->body = std::move(body).value();
    if (is_name("else")) {
      advance();
      SPW_TRY(expect_block_end());
      SPW_ASSIGN_OR_RETURN(s->else_body, parse_body({"endfor"}, s->pos, "for"));
    }
    advance();
    SPW_TRY(expect_block_end());
    return s;
  }

  Result<StmtPtr> parse_set(StmtPtr s) {
    advance();
    SPW_ASSIGN_OR_RETURN(std::string first, expect_name());
    s->targets.push_back(std::move(first));
    if (skip_op(".")) {
      SPW_ASSIGN_OR_RETURN(s->attribute, expect_name());
      s->kind = StmtKind::kSet;
      SPW_TRY(expect_op("="));
      SPW_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, {}, false));
      SPW_TRY(expect_block_end());
      return s;
    }
    while (skip_op(",")) {
      SPW_ASSIGN_OR_RETURN(std::string name, expect_name());
      s->targets.push_back(std::move(name));
    }
    if (skip_op("=")) {
      s->kind = StmtKind::kSet;
      SPW_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, {}, false));
      SPW_TRY(expect_block_end());
      return s;
    }
    if (s->targets.size() != 1) return unexpected("'='");
    if (is_op("|")) return syntax_error(cur().pos, "filters on set blocks are not supported");
    SPW_TRY(expect_block_end());
    s->kind = StmtKind::kSetBlock;
    SPW_TRY(parse_nested_body(s.get(), {"endset"}, "set"));
    return s;
  }

  Result<StmtPtr> parse_macro(StmtPtr s) {
    s->kind = StmtKind::kMacro;
    advance();
    SPW_ASSIGN_OR_RETURN(s->name, expect_name());
    SPW_TRY(expect_op("("));
    while (!is_op(")")) {
      if (!s->params.empty()) SPW_TRY(expect_op(","));
      if (is_op(")")) break;
      MacroParam param;
      SPW_ASSIGN_OR_RETURN(param.name, expect_name());
      if (skip_op("=")) {
        SPW_ASSIGN_OR_RETURN(param.default_value, parse_expression(true));
      }
      s->params.push_back(std::move(param));
    }
    SPW_TRY(expect_op(")"));
    SPW_TRY(expect_block_end());
    const std::size_t saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    Status body = parse_nested_body(s.get(), {"endmacro"}, "macro");
    loop_depth_ = saved_loop_depth;
    SPW_TRY(body);
    return s;
  }

  Result<StmtPtr> parse_filter_block(StmtPtr s) {
    s->kind = StmtKind::kFilterBlock;
    advance();
    ExprPtr chain;
    do {
      SPW_ASSIGN_OR_RETURN(chain, parse_filter_call(std::move(chain), cur().pos));
    } while (skip_op("|"));
    s->expr = std::move(chain);
    SPW_TRY(expect_block_end());
    SPW_TRY(parse_nested_body(s.get(), {"endfilter"}, "filter"));
    return s;
  }

  // --- Expressions --------------------------------------------------------------------------

  ExprPtr node(ExprKind kind, SourcePos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  // Computes the height of a finished node and checks it.
  Result<ExprPtr> finish(ExprPtr e) {
    std::uint32_t h = 0;
    for (const ExprPtr& c : e->children)
      if (c) h = std::max(h, c->height);
    for (const auto& kw : e->kwargs)
      h = std::max(h, kw.second->height);
    e->height = h + 1;
    if (e->height > limits_.max_syntax_height) {
      return make_error(ErrorCode::kOutOfRange, "{}:{}: expression deeper than {}", e->pos.line,
                        e->pos.column, limits_.max_syntax_height);
    }
    return e;
  }

  bool is_tuple_end(Names extra) const {
    if (cur().kind == TokenKind::kVariableEnd || cur().kind == TokenKind::kBlockEnd || is_op(")"))
      return true;
    return cur().kind == TokenKind::kName && contains_name(extra, cur().text);
  }

  Result<ExprPtr> parse_tuple(bool with_condexpr, Names extra_end, bool explicit_parens) {
    const SourcePos pos = cur().pos;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) SPW_TRY(expect_op(","));
      if (is_tuple_end(extra_end)) break;
      SPW_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(with_condexpr));
      items.push_back(std::move(item));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items.front());
      if (!explicit_parens) return unexpected("an expression");
    }
    ExprPtr t = node(ExprKind::kTuple, pos);
    t->children = std::move(items);
    return finish(std::move(t));
  }

  Result<ExprPtr> parse_expression(bool with_condexpr) {
    SPW_TRY(enter(&expr_depth_));
    DepthScope scope(&expr_depth_);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  Result<ExprPtr> parse_condexpr() {
    SPW_ASSIGN_OR_RETURN(ExprPtr e, parse_or());
    while (is_name("if")) {
      const SourcePos pos = cur().pos;
      advance();
      ExprPtr c = node(ExprKind::kCondition, pos);
      SPW_ASSIGN_OR_RETURN(ExprPtr condition, parse_or());
      ExprPtr otherwise;
      if (skip_name("else")) {
        SPW_TRY(enter(&expr_depth_));
        DepthScope scope(&expr_depth_);
        SPW_ASSIGN_OR_RETURN(otherwise, parse_condexpr());
      }
      c->children.push_back(std::move(e));
      c->children.push_back(std::move(condition));
      c->children.push_back(std::move(otherwise));
      SPW_ASSIGN_OR_RETURN(e, finish(std::move(c)));
    }
    return e;
  }

  Result<ExprPtr> binary(Op op, SourcePos pos, ExprPtr left, ExprPtr right) {
    ExprPtr b = node(ExprKind::kBinary, pos);
    b->op = op;
    b->children.push_back(std::move(left));
    b->children.push_back(std::move(right));
    return finish(std::move(b));
  }

  Result<ExprPtr> parse_or() {
    SPW_ASSIGN_OR_RETURN(ExprPtr e, parse_and());
    while (is_name("or")) {
      const SourcePos pos = cur().pos;
      advance();
      SPW_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
      SPW_ASSIGN_OR_RETURN(e, binary(Op::kOr, pos, std::move(e), std::move(right)));
    }
    return e;
  }

  Result<ExprPtr> parse_and() {
    SPW_ASSIGN_OR_RETURN(ExprPtr e, parse_not());
    while (is_name("and")) {
      const SourcePos pos = cur().pos;
      advance();
      SPW_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
      SPW_ASSIGN_OR_RETURN(e, binary(Op::kAnd, pos, std::move(e), std::move(right)));
    }
    return e;
  }

  Result<ExprPtr> parse_not() {
    if (!is_name("not")) return parse_compare();
    const SourcePos pos = cur().pos;
    advance();
    SPW_TRY(enter(&expr_depth_));
    DepthScope scope(&expr_depth_);
    ExprPtr n = node(ExprKind::kUnary, pos);
    n->op = Op::kNot;
    SPW_ASSIGN_OR_RETURN(ExprPtr operand, parse_not());
    n->children.push_back(std::move(operand));
    return finish(std::move(n));
  }

  Result<ExprPtr> parse_compare() {
    const SourcePos pos = cur().pos;
    SPW_ASSIGN_OR_RETURN(ExprPtr first, parse_math1());
    ExprPtr c = node(ExprKind::kCompare, pos);
    c->children.push_back(std::move(first));
    while (true) {
      Op op = Op::kNone;
      const SourcePos op_pos = cur().pos;
      if (cur().kind == TokenKind::kOperator) {
        const std::string& t = cur().text;
        if (t == "==") op = Op::kEq;
        if (t == "!=") op = Op::kNe;
        if (t == "<") op = Op::kLt;
        if (t == "<=") op = Op::kLe;
        if (t == ">") op = Op::kGt;
        if (t == ">=") op = Op::kGe;
        if (op != Op::kNone) advance();
      } else if (is_name("in")) {
        op = Op::kIn;
        advance();
      } else if (is_name("not") && peek().kind == TokenKind::kName && peek().text == "in") {
        op = Op::kNotIn;
        advance();
        advance();
      }
      if (op == Op::kNone) break;
      if (c->ops.empty()) c->pos = op_pos;  // Errors point at the operator.
      SPW_ASSIGN_OR_RETURN(ExprPtr operand, parse_math1());
      c->ops.push_back(op);
      c->children.push_back(std::move(operand));
    }
    if (c->ops.empty()) return std::move(c->children.front());
    return finish(std::move(c));
  }

  Result<ExprPtr> parse_math1() {
    SPW_ASSIGN_OR_RETURN(ExprPtr e, parse_concat());
    while (is_op("+") || is_op("-")) {
      const Op op = is_op("+") ? Op::kAdd : Op::kSub;
      const SourcePos pos = cur().pos;
      advance();
      SPW_ASSIGN_OR_RETURN(ExprPtr right, parse_concat());
      SPW_ASSIGN_OR_RETURN(e, binary(op, pos, std::move(e), std::move(right)));
    }
    return e;
  }

  Result<ExprPtr> parse_concat() {
    SPW_ASSIGN_OR_RETURN(ExprPtr e, parse_math2());
    while (is_op("~")) {
      const SourcePos pos = cur().pos;
      advance();
      SPW_ASSIGN_OR_RETURN(ExprPtr right, parse_math2());
      SPW_ASSIGN_OR_RETURN(e, binary(Op::kConcat, pos, std::move(e), std::move(right)));
    }
    return e;
  }

  Result<ExprPtr> parse_math2() {
    SPW_ASSIGN_OR_RETURN(ExprPtr e, parse_pow());
    while (true) {
      Op op = Op::kNone;
      if (is_op("*")) op = Op::kMul;
      if (is_op("/")) op = Op::kDiv;
      if (is_op("//")) op = Op::kFloorDiv;
      if (is_op("%")) op = Op::kMod;
      if (op == Op::kNone) return e;
      const SourcePos pos = cur().pos;
      advance();
      SPW_ASSIGN_OR_RETURN(ExprPtr right, parse_pow());
      SPW_ASSIGN_OR_RETURN(e, binary(op, pos, std::move(e), std::move(right)));
    }
  }

  Result<ExprPtr> parse_pow() {
    SPW_ASSIGN_OR_RETURN(ExprPtr e, parse_unary(true));
    while (is_op("**")) {
      const SourcePos pos = cur().pos;
      advance();
      SPW_ASSIGN_OR_RETURN(ExprPtr right, parse_unary(true));
      SPW_ASSIGN_OR_RETURN(e, binary(Op::kPow, pos, std::move(e), std::move(right)));
    }
    return e;
  }

  Result<ExprPtr> parse_unary(bool with_filter) {
    const SourcePos pos = cur().pos;
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Op op = is_op("-") ? Op::kNeg : Op::kPos;
      advance();
      SPW_TRY(enter(&expr_depth_));
      DepthScope scope(&expr_depth_);
      ExprPtr u = node(ExprKind::kUnary, pos);
      u->op = op;
      SPW_ASSIGN_OR_RETURN(ExprPtr operand, parse_unary(false));
      u->children.push_back(std::move(operand));
      SPW_ASSIGN_OR_RETURN(e, finish(std::move(u)));
    } else {
      SPW_ASSIGN_OR_RETURN(e, parse_primary());
    }
    SPW_ASSIGN_OR_RETURN(e, parse_postfix(std::move(e)));
    if (with_filter) {
      SPW_ASSIGN_OR_RETURN(e, parse_filter_expr(std::move(e)));
    }
    return e;
  }

  Result<ExprPtr> literal(Value v, SourcePos pos) {
    ExprPtr e = node(ExprKind::kLiteral, pos);
    e->value = std::move(v);
    return finish(std::move(e));
  }

  Result<ExprPtr> parse_primary() {
    const Token& t = cur();
    const SourcePos pos = t.pos;
    switch (t.kind) {
      case TokenKind::kName: {
        const std::string name = t.text;
        advance();
        if (name == "true" || name == "True") return literal(Value::boolean(true), pos);
        if (name == "false" || name == "False") return literal(Value::boolean(false), pos);
        if (name == "none" || name == "None") return literal(Value::none(), pos);
        ExprPtr n = node(ExprKind::kName, pos);
        n->name = name;
        return finish(std::move(n));
      }
      case TokenKind::kString: {
        std::string s;
        while (cur().kind == TokenKind::kString) {  // 'a' 'b' is 'ab'.
          s += cur().text;
          advance();
        }
        return literal(Value::string(std::move(s)), pos);
      }
      case TokenKind::kInteger: {
        const std::int64_t i = t.integer;
        advance();
        return literal(Value::integer(i), pos);
      }
      case TokenKind::kFloat: {
        const double d = t.number;
        advance();
        return literal(Value::number(d), pos);
      }
      case TokenKind::kOperator:
        if (is_op("(")) {
          advance();
          SPW_ASSIGN_OR_RETURN(ExprPtr e, parse_tuple(true, {}, true));
          SPW_TRY(expect_op(")"));
          return e;
        }
        if (is_op("[")) return parse_list();
        if (is_op("{")) return parse_dict();
        break;
      default:
        break;
    }
    return unexpected("an expression");
  }

  Result<ExprPtr> parse_list() {
    ExprPtr l = node(ExprKind::kList, cur().pos);
    advance();
    while (!is_op("]")) {
      if (!l->children.empty()) SPW_TRY(expect_op(","));
      if (is_op("]")) break;
      SPW_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
      l->children.push_back(std::move(item));
    }
    SPW_TRY(expect_op("]"));
    return finish(std::move(l));
  }

  Result<ExprPtr> parse_dict() {
    ExprPtr d = node(ExprKind::kDict, cur().pos);
    advance();
    while (!is_op("}")) {
      if (!d->children.empty()) SPW_TRY(expect_op(","));
      if (is_op("}")) break;
      SPW_ASSIGN_OR_RETURN(ExprPtr key, parse_expression(true));
      SPW_TRY(expect_op(":"));
      SPW_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      d->children.push_back(std::move(key));
      d->children.push_back(std::move(value));
    }
    SPW_TRY(expect_op("}"));
    return finish(std::move(d));
  }

  Result<ExprPtr> parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        SPW_ASSIGN_OR_RETURN(e, parse_subscript(std::move(e)));
      } else if (is_op("(")) {
        SPW_ASSIGN_OR_RETURN(e, parse_call(std::move(e)));
      } else {
        return e;
      }
    }
  }

  Result<ExprPtr> parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        const SourcePos pos = cur().pos;
        advance();
        SPW_ASSIGN_OR_RETURN(e, parse_filter_call(std::move(e), pos));
      } else if (is_name("is")) {
        SPW_ASSIGN_OR_RETURN(e, parse_test(std::move(e)));
      } else if (is_op("(")) {
        SPW_ASSIGN_OR_RETURN(e, parse_call(std::move(e)));
      } else {
        return e;
      }
    }
  }

  Result<ExprPtr> parse_subscript(ExprPtr target) {
    const SourcePos pos = cur().pos;
    if (skip_op(".")) {
      if (cur().kind == TokenKind::kName) {
        ExprPtr a = node(ExprKind::kGetAttr, pos);
        a->name = cur().text;
        advance();
        a->children.push_back(std::move(target));
        return finish(std::move(a));
      }
      if (cur().kind == TokenKind::kInteger) {
        SPW_ASSIGN_OR_RETURN(ExprPtr index, literal(Value::integer(cur().integer), cur().pos));
        advance();
        ExprPtr g = node(ExprKind::kGetItem, pos);
        g->children.push_back(std::move(target));
        g->children.push_back(std::move(index));
        return finish(std::move(g));
      }
      return unexpected("a name or number");
    }
    advance();  // '['
    SPW_TRY(enter(&expr_depth_));
    DepthScope scope(&expr_depth_);
    ExprPtr first;
    bool is_slice = false;
    if (!is_op(":")) {
      SPW_ASSIGN_OR_RETURN(first, parse_expression(true));
    }
    if (skip_op(":")) is_slice = true;
    if (!is_slice) {
      if (is_op(",")) {  // obj[a, b]: a tuple key.
        ExprPtr key = node(ExprKind::kTuple, first->pos);
        key->children.push_back(std::move(first));
        while (skip_op(",") && !is_op("]")) {
          SPW_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
          key->children.push_back(std::move(item));
        }
        SPW_ASSIGN_OR_RETURN(first, finish(std::move(key)));
      }
      SPW_TRY(expect_op("]"));
      ExprPtr g = node(ExprKind::kGetItem, pos);
      g->children.push_back(std::move(target));
      g->children.push_back(std::move(first));
      return finish(std::move(g));
    }
    ExprPtr stop;
    ExprPtr step;
    if (!is_op(":") && !is_op("]")) {
      SPW_ASSIGN_OR_RETURN(stop, parse_expression(true));
    }
    if (skip_op(":") && !is_op("]")) {
      SPW_ASSIGN_OR_RETURN(step, parse_expression(true));
    }
    SPW_TRY(expect_op("]"));
    ExprPtr s = node(ExprKind::kSlice, pos);
    s->children.push_back(std::move(target));
    s->children.push_back(std::move(first));
    s->children.push_back(std::move(stop));
    s->children.push_back(std::move(step));
    return finish(std::move(s));
  }

  // Call arguments after '(' into `e` (children after the first, and kwargs).
  Status parse_call_args(Expr* e) {
    SPW_TRY(expect_op("("));
    SPW_TRY(enter(&expr_depth_));
    DepthScope scope(&expr_depth_);
    bool first = true;
    while (!is_op(")")) {
      if (!first) SPW_TRY(expect_op(","));
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**"))
        return syntax_error(cur().pos, "*args and **kwargs in calls are not supported");
      if (cur().kind == TokenKind::kName && peek().kind == TokenKind::kOperator &&
          peek().text == "=") {
        std::string name = cur().text;
        advance();
        advance();
        SPW_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        e->kwargs.emplace_back(std::move(name), std::move(value));
      } else {
        if (!e->kwargs.empty())
          return syntax_error(cur().pos, "positional argument follows keyword argument");
        SPW_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        e->children.push_back(std::move(value));
      }
    }
    return expect_op(")");
  }

  Result<ExprPtr> parse_call(ExprPtr callee) {
    ExprPtr c = node(ExprKind::kCall, cur().pos);
    c->children.push_back(std::move(callee));
    SPW_TRY(parse_call_args(c.get()));
    return finish(std::move(c));
  }

  // A filter or test name: names joined by dots, as Jinja allows.
  Result<std::string> parse_dotted_name(std::string_view what) {
    if (cur().kind != TokenKind::kName) return unexpected(what);
    std::string name = cur().text;
    advance();
    while (skip_op(".")) {
      SPW_ASSIGN_OR_RETURN(std::string part, expect_name());
      name += "." + part;
    }
    return name;
  }

  // `name[(args)]` after a '|'; `operand` is null in a filter block.
  Result<ExprPtr> parse_filter_call(ExprPtr operand, SourcePos pos) {
    ExprPtr f = node(ExprKind::kFilter, pos);
    SPW_ASSIGN_OR_RETURN(f->name, parse_dotted_name("a filter name"));
    f->children.push_back(std::move(operand));
    if (is_op("(")) SPW_TRY(parse_call_args(f.get()));
    return finish(std::move(f));
  }

  Result<ExprPtr> parse_test(ExprPtr operand) {
    ExprPtr t = node(ExprKind::kTest, cur().pos);
    advance();  // 'is'
    t->negated = skip_name("not");
    SPW_ASSIGN_OR_RETURN(t->name, parse_dotted_name("a test name"));
    t->children.push_back(std::move(operand));
    if (is_op("(")) {
      SPW_TRY(parse_call_args(t.get()));
    } else {
      const TokenKind k = cur().kind;
      const bool starts_argument = k == TokenKind::kName || k == TokenKind::kString ||
                                   k == TokenKind::kInteger || k == TokenKind::kFloat ||
                                   is_op("[") || is_op("{");
      if (starts_argument && !is_name("else") && !is_name("or") && !is_name("and")) {
        if (is_name("is")) return syntax_error(cur().pos, "tests cannot be chained with 'is'");
        SPW_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
        SPW_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
        t->children.push_back(std::move(arg));
      }
    }
    return finish(std::move(t));
  }

  std::vector<Token> tokens_;
  const JinjaLimits& limits_;
  std::size_t i_ = 0;
  std::size_t block_depth_ = 0;
  std::size_t expr_depth_ = 0;
  std::size_t loop_depth_ = 0;
};

}  // namespace

Result<Program> parse_template(std::string_view source, const JinjaLimits& limits) {
  SPW_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(source, limits));
  return Parser(std::move(tokens), limits).run();
}

}  // namespace spillway::serve::jinja
