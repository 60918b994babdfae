// The syntax tree of a parsed Jinja template: statements (text, output, if, for, set, macro,
// ...) holding expressions. Built by the parser, immutable afterwards, walked by the
// evaluator. Every node knows where in the source it starts, for error messages.
//
// Thread-safety: immutable after parsing; one tree may be rendered by many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "serve/jinja_error.h"
#include "serve/jinja_operators.h"
#include "serve/jinja_value.h"

namespace spillway::serve::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind : std::uint8_t {
  kLiteral,   // value
  kName,      // name
  kList,      // children: items
  kTuple,     // children: items
  kDict,      // children: key0, value0, key1, value1, ...
  kGetAttr,   // children[0].name
  kGetItem,   // children[0][children[1]]
  kSlice,     // children[0][children[1]:children[2]:children[3]]; absent bounds are null
  kCall,      // children[0](children[1..], kwargs)
  kFilter,    // children[0] | name(children[1..], kwargs); children[0] is null in a filter block
  kTest,      // children[0] is [not] name(children[1..], kwargs)
  kUnary,     // op children[0]: kNeg, kPos, kNot
  kBinary,    // children[0] op children[1]: arithmetic, ~, and, or
  kCompare,   // children[0] ops[0] children[1] ops[1] children[2] ... (chained, as Python)
  kCondition  // children[0] if children[1] else children[2]; children[2] may be null
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  SourcePos pos;
  Op op = Op::kNone;
  bool negated = false;  // kTest: `is not`.
  std::string name;      // kName, kGetAttr, kFilter, kTest, kCall of a name.
  Value value;           // kLiteral.
  std::vector<ExprPtr> children;
  std::vector<Op> ops;  // kCompare.
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::uint32_t height = 1;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind : std::uint8_t {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches, else_body
  kFor,          // for targets in expr [if condition]: body [else: else_body]
  kSet,          // set targets = expr, or set targets[0].attribute = expr
  kSetBlock,     // set targets[0]: body's output
  kMacro,        // macro name(params): body
  kBreak,        // break
  kContinue,     // continue
  kFilterBlock,  // filter expr (a kFilter with a null operand): body
  kScope,        // body rendered as is ({% generation %})
};

struct IfBranch {
  ExprPtr condition;
  Body body;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // May be null.
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  SourcePos pos;
  std::string text;
  ExprPtr expr;
  ExprPtr condition;
  std::vector<IfBranch> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attribute;  // kSet of a namespace attribute.
  std::string name;       // kMacro.
  std::vector<MacroParam> params;
};

// A parsed template.
struct Program {
  Body body;
};

}  // namespace spillway::serve::jinja
