"""SWE-smith-style bug synthesis: one small AST-located mutation in one function.

Each :class:`Mutation` is found on Python's ``ast`` and applied as a *text* splice at the node's source
position (so the rest of the file keeps its formatting and the diff stays one or two lines). Kinds:

======================  ==========================================================
``flip_operator``       ``a + b`` -> ``a - b`` (and ``*``/``//``, ``<<``/``>>``, ``&``/``|``, ``+=``/``-=``)
``flip_comparison``     ``<`` -> ``<=``, ``>=`` -> ``>``, ``==``/``!=``, ``in``/``not in``, ``is``/``is not``
``swap_bool``           ``and`` <-> ``or``
``off_by_one``          an integer constant ``n`` -> ``n + 1`` (``1`` -> ``0``)
``invert_if``           ``if cond:`` -> ``if not (cond):``
``remove_branch``       an ``if`` without ``else`` is deleted
``swap_arguments``      the first two positional arguments of a call swapped
``wrong_return``        ``return expr`` -> ``return None``
``drop_not``            ``not x`` -> ``x``
======================  ==========================================================
"""

from __future__ import annotations

import ast
import dataclasses
import re

_BINOP = {
    ast.Add: ("+", "-"),
    ast.Sub: ("-", "+"),
    ast.Mult: ("*", "//"),
    ast.FloorDiv: ("//", "*"),
    ast.LShift: ("<<", ">>"),
    ast.RShift: (">>", "<<"),
    ast.BitAnd: ("&", "|"),
    ast.BitOr: ("|", "&"),
    ast.Mod: ("%", "//"),
}
_CMPOP = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
}
KINDS = (
    "flip_operator",
    "flip_comparison",
    "swap_bool",
    "off_by_one",
    "invert_if",
    "remove_branch",
    "swap_arguments",
    "wrong_return",
    "drop_not",
)


@dataclasses.dataclass(frozen=True)
class Mutation:
    """Replace bytes ``start:end`` of the file with ``text``; ``function`` is the enclosing def's qualname."""

    function: str
    kind: str
    line: int
    start: int
    end: int
    text: str

    def apply(self, source: str) -> str:
        data = source.encode()
        return (data[: self.start] + self.text.encode() + data[self.end :]).decode()


class _Offsets:
    def __init__(self, source: str):
        self.data = source.encode()
        self.starts = [0]
        for line in self.data.split(b"\n"):
            self.starts.append(self.starts[-1] + len(line) + 1)

    def start(self, node: ast.AST) -> int:
        return self.starts[node.lineno - 1] + node.col_offset

    def end(self, node: ast.AST) -> int:
        return self.starts[node.end_lineno - 1] + node.end_col_offset

    def text(self, a: int, b: int) -> str:
        return self.data[a:b].decode()


def _token_in_gap(gap: str, token: str) -> int | None:
    """Offset of the operator ``token`` in the text between two operands (skipping parens and spaces)."""
    pattern = (
        r"\bnot\s+in\b"
        if token == "not in"
        else r"\bis\s+not\b"
        if token == "is not"
        else (r"\b" + token + r"\b" if token.isalpha() else re.escape(token) + r"(?![=<>/*])")
    )
    match = re.search(pattern, gap)
    if match is None or "#" in gap[: match.start()]:
        return None
    return match.start()


def _gap_mutation(
    off: _Offsets, func: str, kind: str, left: ast.AST, right: ast.AST, old: str, new: str, line: int
) -> Mutation | None:
    a, b = off.end(left), off.start(right)
    if b <= a:
        return None
    gap = off.text(a, b)
    at = _token_in_gap(gap, old)
    if at is None:
        return None
    match = re.match(r"not\s+in|is\s+not", gap[at:]) if " " in old else None
    length = len(match.group().encode()) if match else len(old.encode())
    start = a + len(gap[:at].encode())
    return Mutation(func, kind, line, start, start + length, new)


def _block_bodies(node: ast.AST) -> list[list[ast.stmt]]:
    return [
        getattr(node, name) for name in ("body", "orelse", "finalbody") if isinstance(getattr(node, name, None), list)
    ]


def function_mutations(source: str, min_statements: int = 3) -> dict[str, list[Mutation]]:
    """Every mutation site, grouped by function qualname (functions with fewer statements are skipped).

    Sites are not yet checked to parse: use :func:`changes_program` on the ones picked.
    """
    tree = ast.parse(source)
    off = _Offsets(source)
    lines = source.split("\n")
    found: dict[str, list[Mutation]] = {}

    def visit_function(fn: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str) -> None:
        if sum(1 for _ in ast.walk(fn) if isinstance(_, ast.stmt)) < min_statements:
            return
        out = found.setdefault(qualname, [])
        parents: dict[int, ast.AST] = {}
        for parent in ast.walk(fn):
            for child in ast.iter_child_nodes(parent):
                parents[id(child)] = parent
        docstring = (
            fn.body[0].value
            if (fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant))
            else None
        )
        for node in ast.walk(fn):
            if node is not fn and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue  # nested defs are visited as their own functions
            line = getattr(node, "lineno", fn.lineno)
            mut = None
            if isinstance(node, ast.BinOp) and type(node.op) in _BINOP:
                old, new = _BINOP[type(node.op)]
                mut = _gap_mutation(off, qualname, "flip_operator", node.left, node.right, old, new, line)
            elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOP:
                old, new = _BINOP[type(node.op)]
                mut = _gap_mutation(off, qualname, "flip_operator", node.target, node.value, old + "=", new + "=", line)
            elif isinstance(node, ast.Compare) and type(node.ops[0]) in _CMPOP:
                old, new = _CMPOP[type(node.ops[0])]
                mut = _gap_mutation(off, qualname, "flip_comparison", node.left, node.comparators[0], old, new, line)
            elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
                old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
                mut = _gap_mutation(off, qualname, "swap_bool", node.values[0], node.values[1], old, new, line)
            elif (
                isinstance(node, ast.Constant)
                and type(node.value) is int
                and -64 <= node.value <= 64
                and node is not docstring
            ):
                text = off.text(off.start(node), off.end(node))
                if text.lstrip("-").isdigit():
                    value = 0 if node.value == 1 else node.value + 1
                    mut = Mutation(qualname, "off_by_one", line, off.start(node), off.end(node), str(value))
            elif isinstance(node, ast.If):
                test = node.test
                mut = Mutation(
                    qualname,
                    "invert_if",
                    line,
                    off.start(test),
                    off.end(test),
                    f"not ({off.text(off.start(test), off.end(test))})",
                )
                if (isinstance(test, ast.Compare) or isinstance(test, ast.Name)) and not node.orelse:
                    out.append(mut)
                    mut = _remove_statement(off, lines, qualname, node, parents)
            elif (
                isinstance(node, ast.Call)
                and len(node.args) >= 2
                and not any(isinstance(a, ast.Starred) for a in node.args[:2])
            ):
                a0, a1 = node.args[0], node.args[1]
                t0, t1 = off.text(off.start(a0), off.end(a0)), off.text(off.start(a1), off.end(a1))
                if t0 != t1:
                    mid = off.text(off.end(a0), off.start(a1))
                    mut = Mutation(qualname, "swap_arguments", line, off.start(a0), off.end(a1), t1 + mid + t0)
            elif (
                isinstance(node, ast.Return)
                and node.value is not None
                and not (isinstance(node.value, ast.Constant) and node.value.value is None)
            ):
                mut = Mutation(qualname, "wrong_return", line, off.start(node.value), off.end(node.value), "None")
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                operand = off.text(off.start(node.operand), off.end(node.operand))
                mut = Mutation(qualname, "drop_not", line, off.start(node), off.end(node), f"({operand})")
            if mut is not None:
                out.append(mut)

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit_function(child, prefix + child.name)
                walk(child, prefix + child.name + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")
            else:
                walk(child, prefix)

    walk(tree, "")
    return {name: muts for name, muts in found.items() if muts}


def changes_program(source: str, mutation: Mutation) -> bool:
    """Whether the mutated file parses and differs from the original as a syntax tree."""
    try:
        return ast.dump(ast.parse(mutation.apply(source))) != ast.dump(ast.parse(source))
    except (SyntaxError, ValueError):
        return False


def _remove_statement(
    off: _Offsets, lines: list[str], func: str, node: ast.stmt, parents: dict[int, ast.AST]
) -> Mutation | None:
    parent = parents.get(id(node))
    if parent is None:
        return None
    body = next((b for b in _block_bodies(parent) if any(s is node for s in b)), None)
    if body is None or len(body) < 2:
        return None
    if lines[node.lineno - 1][: node.col_offset].strip() or lines[node.end_lineno - 1][node.end_col_offset :].strip():
        return None
    start = off.starts[node.lineno - 1]
    end = off.starts[node.end_lineno]
    return Mutation(func, "remove_branch", node.lineno, start, end, "")
