//! Condition groups' membership rules: CEL expressions over a subject,
//! compiled and checked once when the group is written and evaluated when a
//! subject or the group changes — never on the check path.
//!
//! A condition sees `attributes` (the subject's string attributes, as a
//! map), `id`, `kind` ("user" or "service") and `status` ("active" or
//! "locked"). It matches only when it evaluates to `true`; an expression that
//! cannot be evaluated for a subject (say, it reads an attribute the subject
//! lacks) does not match. Must not know about protobuf or redb.
//!
//! Every condition is evaluated once per subject write and once per subject
//! when its group is written, so compiling one proves three things before it
//! is accepted:
//!
//! - it is well typed over those variables: it can yield a boolean, names
//!   only those variables (and the ones its own comprehensions bind), and
//!   calls only the functions listed in [`FUNCTIONS`];
//! - its syntax tree is at most [`MAX_CONDITION_DEPTH`] deep, so that
//!   evaluating it (which recurses once per level) fits any thread's stack;
//! - its estimated cost is at most [`MAX_CONDITION_COST`] steps: every node
//!   costs a step, a scan of a list (`in`, `==`, `+`) a step per element,
//!   and a comprehension (`all`, `exists`, `exists_one`, `map`, `filter`)
//!   the cost of its body once per element of the largest list it can be
//!   given. Sizes are known from the expression: literals, the subject's
//!   attributes (at most [`MAX_ATTRIBUTES`]), and what comprehensions and
//!   `+` build from them.
//!
//! The CEL parser recurses deeply (tens of kilobytes of stack per level of
//! brackets in a debug build), so compiling runs on a thread of its own with
//! [`COMPILER_STACK`] bytes of stack; its own depth limit keeps it within.
//!
//! A condition stored by an older version that these checks refuse is not
//! compiled at start-up either: its group then matches no one by condition
//! (explicit members still count), and the refusal is logged as a warning
//! naming the group, so that start-up never evaluates it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::{Context, Env, Program, Value};

use crate::limits::{MAX_ATTRIBUTES, MAX_CONDITION_COST, MAX_CONDITION_DEPTH, MAX_CONDITION_LEN};
use crate::model::{Quoted, Subject, SubjectKind, SubjectStatus};

/// Stack of the thread that compiles a condition: enough for the deepest
/// nesting the CEL parser accepts (it stops at 96 levels, which needs about
/// 32 MiB in a debug build). Reserved, not committed: only pages the parser
/// touches take memory.
const COMPILER_STACK: usize = 64 << 20;

/// Deepest syntax tree evaluated on the calling thread. Evaluation recurses
/// once per level, with frames of tens of kilobytes in a debug build; this
/// depth stays under half a megabyte, which any thread of the server can
/// spare. A deeper condition is evaluated on a thread of its own with
/// [`EVALUATOR_STACK`] bytes of stack, which costs a thread start per
/// evaluation but cannot overflow.
const INLINE_DEPTH: usize = 8;

/// Stack of the thread evaluating a condition deeper than [`INLINE_DEPTH`]:
/// ample for [`MAX_CONDITION_DEPTH`] levels. Reserved, not committed.
const EVALUATOR_STACK: usize = 16 << 20;

/// The variables a condition may read.
const VARIABLES: [&str; 4] = ["attributes", "id", "kind", "status"];

/// The functions a condition may call, besides operators: the standard CEL
/// functions this build of the `cel` crate provides for strings, lists,
/// maps and conversions.
pub const FUNCTIONS: [&str; 10] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "dyn",
];

/// One standard environment for every evaluation: building it allocates
/// every overload table, which would otherwise happen per subject.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled condition.
pub struct Condition {
    /// The expression as written.
    source: String,
    /// Compiled and checked once; executing it allocates, which is why
    /// conditions are evaluated on writes only.
    program: Program,
    /// Depth of the syntax tree, at most [`MAX_CONDITION_DEPTH`]: decides
    /// where it is evaluated.
    depth: usize,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

/// Why a condition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// Where and what, e.g. "at line 1, column 12: mismatched input".
    pub message: String,
}

impl ConditionError {
    fn new(message: impl Into<String>) -> Self {
        ConditionError {
            message: message.into(),
        }
    }
}

impl Condition {
    /// Compiles a condition, refusing syntax errors (with their position),
    /// over-long text, and expressions that fail the checks of the module
    /// documentation: ill typed, unknown variables or functions, too deep,
    /// or too costly.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        if source.len() > MAX_CONDITION_LEN {
            return Err(ConditionError::new(format!(
                "longer than {MAX_CONDITION_LEN} bytes"
            )));
        }
        let (program, depth) = std::thread::scope(|scope| {
            let compiler = std::thread::Builder::new()
                .name("condition-compiler".into())
                .stack_size(COMPILER_STACK)
                .spawn_scoped(scope, || compile(source))
                .map_err(|e| ConditionError::new(format!("cannot compile now: {e}")))?;
            compiler
                .join()
                .map_err(|_| ConditionError::new("the compiler failed on this expression"))?
        })?;
        Ok(Condition {
            source: source.to_string(),
            program,
            depth,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `subject` satisfies the condition. `false` as well if a deep
    /// condition's evaluator thread cannot be started (logged).
    pub fn matches(&self, subject: &Subject) -> bool {
        if self.depth <= INLINE_DEPTH {
            return self.evaluate(subject);
        }
        let outcome = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("condition-evaluator".into())
                .stack_size(EVALUATOR_STACK)
                .spawn_scoped(scope, || self.evaluate(subject))
                .map_err(|e| e.to_string())?
                .join()
                .map_err(|_| "the evaluator failed".to_owned())
        });
        outcome.unwrap_or_else(|error| {
            tracing::warn!(condition = %self.source, %error, "condition not evaluated; no match");
            false
        })
    }

    fn evaluate(&self, subject: &Subject) -> bool {
        let attributes: HashMap<String, String> = subject
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut context = Context::with_env(Arc::clone(&ENV));
        context.add_variable_from_value("attributes", attributes);
        context.add_variable_from_value("id", subject.id.to_string());
        context.add_variable_from_value(
            "kind",
            match subject.kind {
                SubjectKind::User => "user",
                SubjectKind::Service => "service",
            },
        );
        context.add_variable_from_value(
            "status",
            match subject.status {
                SubjectStatus::Active => "active",
                SubjectStatus::Locked => "locked",
            },
        );
        matches!(self.program.execute(&context), Ok(Value::Bool(true)))
    }
}

/// Parses and checks `source`, returning the program and its depth; runs on
/// the compiler thread, which is also where a refused (possibly very deep)
/// syntax tree is dropped.
fn compile(source: &str) -> Result<(Program, usize), ConditionError> {
    // The shared environment is built here, on a large stack, before any
    // condition can be evaluated.
    LazyLock::force(&ENV);
    let program = Program::compile(source).map_err(|errors| {
        ConditionError::new(
            errors
                .errors
                .first()
                .map(|e| format!("at line {}, column {}: {}", e.pos.0, e.pos.1 + 1, e.msg))
                .unwrap_or_else(|| "invalid expression".into()),
        )
    })?;
    let root = program.expression();
    let depth = depth(root);
    if depth > MAX_CONDITION_DEPTH {
        return Err(ConditionError::new(format!(
            "nested {depth} levels deep; the limit is {MAX_CONDITION_DEPTH}"
        )));
    }
    let mut checker = Checker {
        source,
        program: &program,
        scope: VARIABLES
            .iter()
            .map(|v| {
                let ty = if *v == "attributes" {
                    Ty::Map {
                        key: Box::new(Ty::String),
                        value: Box::new(Ty::String),
                        max: MAX_ATTRIBUTES as u64,
                    }
                } else {
                    Ty::String
                };
                ((*v).to_owned(), ty)
            })
            .collect(),
    };
    let (ty, cost) = checker.check(root)?;
    if !matches!(ty, Ty::Bool | Ty::Dyn) {
        return Err(ConditionError::new(format!(
            "a condition must yield a boolean; this one yields {}",
            ty.described()
        )));
    }
    if cost > MAX_CONDITION_COST {
        return Err(ConditionError::new(format!(
            "too costly: about {cost} evaluation steps per subject, the limit is \
             {MAX_CONDITION_COST} (a comprehension repeats its body for every element \
             of its list)"
        )));
    }
    Ok((program, depth))
}

/// The depth of the syntax tree (a leaf is 1), found without recursion: the
/// tree has not been shown shallow yet.
fn depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(children(e).into_iter().map(|c| (c, d + 1)));
    }
    deepest
}

/// The direct subexpressions of `e`.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| t.as_ref())
            .chain(call.args.iter())
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(cel::common::ast::MapExpr { entries })
        | Expr::Struct(cel::common::ast::StructExpr { entries, .. }) => entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Select(s) => vec![s.operand.as_ref()],
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => Vec::new(),
    }
}

/// What the checker knows of a value before evaluation. Lists and maps
/// carry the most elements they can have, for the cost estimate.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    List {
        elem: Box<Ty>,
        max: u64,
    },
    Map {
        key: Box<Ty>,
        value: Box<Ty>,
        max: u64,
    },
    /// The element of an empty list: joins any type.
    Never,
    /// Known only at evaluation (a mixed list's element, `dyn(x)`).
    Dyn,
}

impl Ty {
    fn described(&self) -> String {
        match self {
            Ty::Int => format!("an {self}"),
            _ => format!("a {self}"),
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// How many elements a list or map can hold; 0 for anything else.
    fn size(&self) -> u64 {
        match self {
            Ty::List { max, .. } | Ty::Map { max, .. } => *max,
            _ => 0,
        }
    }

    /// The type of a value that is either `self` or `other`.
    fn join(self, other: Ty) -> Ty {
        match (self, other) {
            (Ty::Never, t) | (t, Ty::Never) => t,
            (Ty::List { elem: a, max: m }, Ty::List { elem: b, max: n }) => Ty::List {
                elem: Box::new(a.join(*b)),
                max: m.max(n),
            },
            (
                Ty::Map {
                    key: ka,
                    value: va,
                    max: m,
                },
                Ty::Map {
                    key: kb,
                    value: vb,
                    max: n,
                },
            ) => Ty::Map {
                key: Box::new(ka.join(*kb)),
                value: Box::new(va.join(*vb)),
                max: m.max(n),
            },
            (a, b) if a == b => a,
            _ => Ty::Dyn,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Uint => "uint",
            Ty::Double => "double",
            Ty::String => "string",
            Ty::Bytes => "bytes",
            Ty::Null => "null",
            Ty::List { .. } => "list",
            Ty::Map { .. } => "map",
            Ty::Never | Ty::Dyn => "dyn",
        })
    }
}

/// Type-checks a syntax tree shown to be at most [`MAX_CONDITION_DEPTH`]
/// deep, so its recursion is bounded.
struct Checker<'a> {
    source: &'a str,
    program: &'a Program,
    /// Variables in scope, innermost last.
    scope: Vec<(String, Ty)>,
}

impl Checker<'_> {
    /// "at line L, column C: {message}" for the node `e`.
    fn error(&self, e: &IdedExpr, message: impl fmt::Display) -> ConditionError {
        let Some((start, _)) = self.program.source_info().offset_for(e.id) else {
            return ConditionError::new(message.to_string());
        };
        let before = self.source.chars().take(start as usize);
        let (mut line, mut column) = (1, 1);
        for c in before {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        ConditionError::new(format!("at line {line}, column {column}: {message}"))
    }

    /// The type of `e` and the estimated cost of evaluating it once.
    fn check(&mut self, e: &IdedExpr) -> Result<(Ty, u64), ConditionError> {
        match &e.expr {
            Expr::Literal(literal) => Ok((
                match literal {
                    LiteralValue::Boolean(_) => Ty::Bool,
                    LiteralValue::Bytes(_) => Ty::Bytes,
                    LiteralValue::Double(_) => Ty::Double,
                    LiteralValue::Int(_) => Ty::Int,
                    LiteralValue::Null => Ty::Null,
                    LiteralValue::String(_) => Ty::String,
                    LiteralValue::UInt(_) => Ty::Uint,
                },
                1,
            )),
            Expr::Ident(name) => match self.scope.iter().rev().find(|(n, _)| n == name) {
                Some((_, ty)) => Ok((ty.clone(), 1)),
                None => Err(self.error(
                    e,
                    format!(
                        "unknown variable {}; a condition may read {}",
                        Quoted(name),
                        VARIABLES.join(", ")
                    ),
                )),
            },
            Expr::Select(select) => {
                let (operand, cost) = self.check(&select.operand)?;
                let ty = match (operand, select.test) {
                    (Ty::Map { .. } | Ty::Dyn, true) => Ty::Bool,
                    (Ty::Map { value, .. }, false) => *value,
                    (Ty::Dyn, false) => Ty::Dyn,
                    (other, _) => {
                        return Err(self.error(
                            e,
                            format!(
                                "cannot read field {} of {}",
                                Quoted(&select.field),
                                other.described()
                            ),
                        ));
                    }
                };
                Ok((ty, cost.saturating_add(1)))
            }
            Expr::List(list) => {
                let mut elem = Ty::Never;
                let mut cost = 1u64;
                for element in &list.elements {
                    let (ty, c) = self.check(element)?;
                    elem = elem.join(ty);
                    cost = cost.saturating_add(c);
                }
                let max = list.elements.len() as u64;
                Ok((
                    Ty::List {
                        elem: Box::new(elem),
                        max,
                    },
                    cost,
                ))
            }
            Expr::Map(map) => {
                let (mut key, mut value) = (Ty::Never, Ty::Never);
                let mut cost = 1u64;
                for entry in &map.entries {
                    let EntryExpr::MapEntry(m) = &entry.expr else {
                        return Err(self.error(e, "message fields are not supported"));
                    };
                    let (k, kc) = self.check(&m.key)?;
                    let (v, vc) = self.check(&m.value)?;
                    key = key.join(k);
                    value = value.join(v);
                    cost = cost.saturating_add(kc).saturating_add(vc);
                }
                let max = map.entries.len() as u64;
                Ok((
                    Ty::Map {
                        key: Box::new(key),
                        value: Box::new(value),
                        max,
                    },
                    cost,
                ))
            }
            Expr::Struct(_) => Err(self.error(e, "message literals are not supported")),
            Expr::Unspecified => Err(self.error(e, "invalid expression")),
            Expr::Comprehension(c) => self.comprehension(e, c),
            Expr::Call(call) => {
                let target = match &call.target {
                    Some(t) => Some(self.check(t)?),
                    None => None,
                };
                let mut args = Vec::with_capacity(call.args.len());
                for a in &call.args {
                    args.push(self.check(a)?);
                }
                let cost = target
                    .iter()
                    .chain(args.iter())
                    .fold(1u64, |sum, (_, c)| sum.saturating_add(*c));
                let types: Vec<Ty> = args.into_iter().map(|(t, _)| t).collect();
                let (ty, extra) = self.call(e, &call.func_name, target.map(|(t, _)| t), &types)?;
                Ok((ty, cost.saturating_add(extra)))
            }
        }
    }

    fn comprehension(
        &mut self,
        e: &IdedExpr,
        c: &cel::common::ast::ComprehensionExpr,
    ) -> Result<(Ty, u64), ConditionError> {
        let (range, range_cost) = self.check(&c.iter_range)?;
        // One variable is a list's element or a map's key; with two, the
        // first is a list's index or a map's key and the second the value.
        let (index, value, n, list) = match range {
            Ty::List { elem, max } => (Ty::Int, *elem, max, true),
            Ty::Map { key, value, max } => (*key, *value, max, false),
            other => {
                return Err(self.error(
                    e,
                    format!(
                        "can only iterate over a list or a map, not {}",
                        other.described()
                    ),
                ));
            }
        };
        let known = |t: Ty| if t == Ty::Never { Ty::Dyn } else { t };
        let (index, value) = (known(index), known(value));
        let vars = match &c.iter_var2 {
            Some(second) => vec![(c.iter_var.clone(), index), (second.clone(), value)],
            None if list => vec![(c.iter_var.clone(), value)],
            None => vec![(c.iter_var.clone(), index)],
        };
        let (init, init_cost) = self.check(&c.accu_init)?;
        // An accumulated list grows by at most one element per iteration
        // (`map`, `filter`), so it holds at most `n`.
        let accu = match init.clone() {
            Ty::List { elem, .. } => Ty::List { elem, max: n },
            other => other,
        };
        let outer = self.scope.len();
        self.scope.extend(vars);
        self.scope.push((c.accu_var.clone(), accu.clone()));
        let body = self
            .check(&c.loop_cond)
            .and_then(|(_, cond)| Ok((cond, self.check(&c.loop_step)?)));
        let (cond_cost, (step, step_cost)) = match body {
            Ok(b) => b,
            Err(err) => {
                self.scope.truncate(outer);
                return Err(err);
            }
        };
        let accu = match (accu, step) {
            (Ty::List { elem, max }, Ty::List { elem: s, .. }) => Ty::List {
                elem: Box::new(elem.join(*s)),
                max,
            },
            (a, s) => a.join(s),
        };
        self.scope.truncate(outer);
        self.scope.push((c.accu_var.clone(), accu));
        let result = self.check(&c.result);
        self.scope.truncate(outer);
        let (ty, result_cost) = result?;
        let per_element = cond_cost.saturating_add(step_cost);
        let cost = range_cost
            .saturating_add(init_cost)
            .saturating_add(n.saturating_mul(per_element))
            .saturating_add(result_cost);
        Ok((ty, cost))
    }

    /// The type of a call and its cost beyond evaluating its operands.
    fn call(
        &self,
        e: &IdedExpr,
        name: &str,
        target: Option<Ty>,
        args: &[Ty],
    ) -> Result<(Ty, u64), ConditionError> {
        use Ty::{Bool, Bytes, Double, Dyn, Int, Map, Null, Uint};
        let wrong = |why: String| Err(self.error(e, why));
        let operator = |symbol: &str, a: &Ty, b: &Ty| {
            wrong(format!(
                "{symbol} does not apply to {} and {}",
                a.described(),
                b.described()
            ))
        };
        let boolish = |t: &Ty| matches!(t, Bool | Dyn);
        let stringish = |t: &Ty| matches!(t, Ty::String | Dyn);
        match (name, target.as_ref(), args) {
            ("_&&_" | "_||_", None, terms) if terms.len() >= 2 => {
                if let Some(t) = terms.iter().find(|t| !boolish(t)) {
                    let symbol = if name == "_&&_" { "&&" } else { "||" };
                    return wrong(format!("{symbol} needs booleans, not {}", t.described()));
                }
                Ok((Bool, 0))
            }
            ("!_" | "@not_strictly_false", None, [a]) => {
                if !boolish(a) {
                    return wrong(format!("! needs a boolean, not {}", a.described()));
                }
                Ok((Bool, 0))
            }
            ("_?_:_", None, [cond, then, otherwise]) => {
                if !boolish(cond) {
                    return wrong(format!(
                        "the condition of ?: must be a boolean, not {}",
                        cond.described()
                    ));
                }
                Ok((then.clone().join(otherwise.clone()), 0))
            }
            ("_==_" | "_!=_", None, [a, b]) => Ok((Bool, a.size().max(b.size()))),
            ("_<_" | "_<=_" | "_>_" | "_>=_", None, [a, b]) => {
                let comparable = (a.is_number() && b.is_number())
                    || (a == b && matches!(a, Ty::String | Bytes | Bool))
                    || matches!(a, Dyn)
                    || matches!(b, Dyn);
                if !comparable {
                    return operator("ordering", a, b);
                }
                Ok((Bool, 0))
            }
            ("_+_", None, [a, b]) => match (a, b) {
                (Ty::List { elem: x, max: m }, Ty::List { elem: y, max: n }) => Ok((
                    Ty::List {
                        elem: Box::new(x.as_ref().clone().join(y.as_ref().clone())),
                        max: m.saturating_add(*n),
                    },
                    m.saturating_add(*n),
                )),
                (Int, Int)
                | (Uint, Uint)
                | (Double, Double)
                | (Ty::String, Ty::String)
                | (Bytes, Bytes) => Ok((a.clone(), 0)),
                (Dyn, _) | (_, Dyn) => Ok((Dyn, a.size().saturating_add(b.size()))),
                _ => operator("+", a, b),
            },
            ("_-_" | "_*_" | "_/_" | "_%_", None, [a, b]) => match (a, b) {
                (Int, Int) | (Uint, Uint) => Ok((a.clone(), 0)),
                (Double, Double) if name != "_%_" => Ok((Double, 0)),
                (Dyn, t) | (t, Dyn) if t.is_number() || matches!(t, Dyn) => Ok((t.clone(), 0)),
                _ => operator("arithmetic", a, b),
            },
            ("-_", None, [a]) => match a {
                Int | Double | Dyn => Ok((a.clone(), 0)),
                _ => wrong(format!("- does not apply to {}", a.described())),
            },
            ("_[_]", None, [container, index]) => match (container, index) {
                (Ty::List { elem, .. }, Int | Uint | Dyn) => {
                    let elem = elem.as_ref().clone();
                    Ok((if elem == Ty::Never { Dyn } else { elem }, 0))
                }
                (Map { value, .. }, _) => Ok((value.as_ref().clone(), 0)),
                (Dyn, _) => Ok((Dyn, 0)),
                _ => operator("indexing", container, index),
            },
            ("@in", None, [_, container]) => match container {
                Ty::List { max, .. } | Map { max, .. } => Ok((Bool, *max)),
                Dyn => Ok((Bool, 0)),
                other => wrong(format!(
                    "in needs a list or a map on its right, not {}",
                    other.described()
                )),
            },
            ("size", None, [a]) | ("size", Some(a), []) if sized(a) => Ok((Int, 0)),
            ("contains" | "startsWith" | "endsWith", Some(t), [a])
                if stringish(t) && stringish(a) =>
            {
                Ok((Bool, 0))
            }
            ("string", None, [a]) if !matches!(a, Ty::List { .. } | Map { .. } | Null) => {
                Ok((Ty::String, 0))
            }
            ("int" | "uint" | "double", None, [a])
                if a.is_number() || matches!(a, Ty::String | Dyn) =>
            {
                Ok((
                    match name {
                        "int" => Int,
                        "uint" => Uint,
                        _ => Double,
                    },
                    0,
                ))
            }
            ("bool", None, [Bool | Ty::String | Dyn]) => Ok((Bool, 0)),
            ("dyn", None, [_]) => Ok((Dyn, 0)),
            (known, target, args) if FUNCTIONS.contains(&known) => {
                let mut operands: Vec<String> = target.iter().map(|t| t.described()).collect();
                operands.extend(args.iter().map(Ty::described));
                let style = if target.is_some() {
                    "called on"
                } else {
                    "applied to"
                };
                let on = if operands.is_empty() {
                    "nothing".to_owned()
                } else {
                    operands.join(" and ")
                };
                wrong(format!("{known} cannot be {style} {on}"))
            }
            (unknown, _, _) => wrong(format!(
                "unknown function {}; a condition may call {} and the CEL operators",
                Quoted(unknown),
                FUNCTIONS.join(", ")
            )),
        }
    }
}

/// Whether `size` applies to a value of type `t`.
fn sized(t: &Ty) -> bool {
    matches!(
        t,
        Ty::String | Ty::Bytes | Ty::List { .. } | Ty::Map { .. } | Ty::Dyn
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(attrs: &[(&str, &str)]) -> Subject {
        Subject {
            id: "e1".parse().unwrap(),
            kind: SubjectKind::User,
            status: SubjectStatus::Active,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home_scope: None,
        }
    }

    fn refused(source: &str) -> String {
        match Condition::parse(source) {
            Ok(_) => panic!("accepted: {source}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn membership_follows_attributes() {
        let c = Condition::parse(
            r#"attributes.lifecycle_status in ["employed", "garden_leave", "leave", "terminated"]"#,
        )
        .unwrap();
        assert!(c.matches(&subject(&[("lifecycle_status", "leave")])));
        assert!(!c.matches(&subject(&[("lifecycle_status", "resigned")])));
        assert!(
            !c.matches(&subject(&[])),
            "a missing attribute does not match"
        );
    }

    #[test]
    fn boolean_operators_and_negated_membership() {
        let c = Condition::parse(
            r#"(attributes.department == "HR" || kind == "service") && !(attributes.level in ["intern"])"#,
        )
        .unwrap();
        assert!(c.matches(&subject(&[("department", "HR"), ("level", "senior")])));
        assert!(!c.matches(&subject(&[("department", "HR"), ("level", "intern")])));
        assert!(!c.matches(&subject(&[("department", "IT"), ("level", "senior")])));
    }

    #[test]
    fn comprehensions_and_string_functions_are_accepted() {
        let c = Condition::parse(r#"["a","b"].exists(x, x == attributes.dept)"#).unwrap();
        assert!(c.matches(&subject(&[("dept", "b")])));
        assert!(!c.matches(&subject(&[("dept", "c")])));
        for ok in [
            r#"has(attributes.dept) && attributes["dept"].startsWith("fin")"#,
            r#"attributes.email.endsWith("@example.com") || id.contains("admin")"#,
            r#"size(attributes) > 2 && attributes.size() < 10"#,
            r#"attributes.exists(k, k.startsWith("x_")) && status == "active""#,
            r#"["a", "b"].map(x, x + "!").filter(y, y == "a!").size() == 1"#,
            r#"["a", "b"].all(x, x != attributes.dept) ? false : true"#,
            r#"int(attributes.level) >= 3 && double("1.5") < 2.0"#,
            r#"[1, 2, 3].exists_one(n, n % 2 == 0)"#,
            r#"dyn(attributes.x) == "y""#,
        ] {
            Condition::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let c = Condition::parse(r#"attributes.exists(k, k.startsWith("x_"))"#).unwrap();
        assert!(c.matches(&subject(&[("x_team", "1")])));
        assert!(!c.matches(&subject(&[("team", "1")])));
    }

    #[test]
    fn errors_name_the_position_and_unknown_variables() {
        let e = Condition::parse(r#"attributes.x == "a" &&"#).unwrap_err();
        assert!(e.message.contains("line 1, column"), "{}", e.message);
        let e = refused(r#"manager == "bob""#);
        assert!(e.contains("unknown variable \"manager\""), "{e}");
        assert!(e.contains("line 1, column 1"), "{e}");
        let e = refused(r#"["a"].exists(x, y == x)"#);
        assert!(e.contains("unknown variable \"y\""), "{e}");
    }

    #[test]
    fn conditions_that_cannot_yield_a_boolean_are_refused() {
        for (source, fragment) in [
            (r#"attributes.dept"#, "yields a string"),
            (r#"["a"].map(x, x)"#, "yields a list"),
            (r#"1 + 2"#, "yields an int"),
            (r#"attributes.dept && true"#, "&& needs booleans"),
            (r#"attributes.dept < 3"#, "ordering does not apply"),
            (r#"attributes.dept in "abc""#, "in needs a list or a map"),
            (r#"kind.x == "a""#, "cannot read field \"x\" of a string"),
            (r#"id.size(1) == 1"#, "size cannot be called on"),
            (r#"matches(id, "a.*")"#, "unknown function \"matches\""),
            (
                r#"lowerAscii(id) == "a""#,
                "unknown function \"lowerAscii\"",
            ),
            (
                r#"kind.exists(x, true)"#,
                "can only iterate over a list or a map",
            ),
        ] {
            let e = refused(source);
            assert!(e.contains(fragment), "{source}: {e}");
        }
    }

    #[test]
    fn nested_comprehensions_over_the_budget_are_refused() {
        let hostile = r#"["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","t"].all(v4, ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","t"].all(v3, ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","t"].all(v2, true)))"#;
        let e = refused(hostile);
        assert!(e.contains("too costly"), "{e}");
        // Two levels over the same list stay within the budget.
        let twice = r#"["a","b","c","d","e","f","g","h","i","j"].all(x, ["a","b","c","d","e","f","g","h","i","j"].exists(y, x + y == attributes.pair))"#;
        Condition::parse(twice).unwrap();
    }

    #[test]
    fn deep_nesting_is_refused_and_never_overflows_a_stack() {
        for source in [
            format!("{}true{}", "(".repeat(200), ")".repeat(200)),
            format!("{}1{} == 1", "[".repeat(90), "]".repeat(90)),
            format!("{} == 1", vec!["1"; 900].join(" + ")),
            format!("attributes{} == 1", "[\"a\"]".repeat(500)),
        ] {
            let e = refused(&source);
            assert!(
                e.contains("deep") || e.contains("Recursion limit"),
                "{}: {e}",
                source.len()
            );
        }
        // At the depth limit, and at the deepest evaluated in place, a
        // condition is evaluated from a thread of a quarter of the default
        // stack without overflowing it.
        let deepest = Condition::parse(&format!("{} == 30", vec!["1"; 30].join(" + "))).unwrap();
        assert_eq!(deepest.depth, MAX_CONDITION_DEPTH - 1);
        let inline =
            Condition::parse("[1].exists(a, [1].exists(b, [1].exists(c, a != b)))").unwrap();
        assert_eq!(inline.depth, INLINE_DEPTH);
        let matched = std::thread::Builder::new()
            .name("evaluator".into())
            .stack_size(512 << 10)
            .spawn(move || {
                let e1 = subject(&[]);
                (deepest.matches(&e1), inline.matches(&e1))
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(matched, (true, false));
    }
}
