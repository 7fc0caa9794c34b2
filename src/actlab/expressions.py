"""Activations written as expressions of x (`expr:x*sigmoid(1.702*x)`): parsed with `ast` against a
whitelist of functions, constants and operators, never `eval`ed, and nested at most
`MAX_EXPRESSION_DEPTH` deep."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

import torch
from torch import nn

from actlab.errors import ActlabError


EXPR_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp, "log": torch.log, "log1p": torch.log1p,
    "sqrt": torch.sqrt, "abs": torch.abs, "relu": torch.relu, "softplus": torch.nn.functional.softplus,
    "erf": torch.erf, "sin": torch.sin, "cos": torch.cos, "sign": torch.sign,
    "min": torch.minimum, "max": torch.maximum, "clamp": torch.clamp,
}
EXPR_CONSTANTS = {"pi": math.pi, "e": math.e}
_EXPR_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


MAX_EXPRESSION_DEPTH = 100


def _depth(tree: ast.AST) -> int:
    """The nesting depth of an expression's syntax tree, counted without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack += [(child, depth + 1) for child in ast.iter_child_nodes(node)]
    return deepest


def compile_expression(text: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """An elementwise function of `x` from arithmetic and whitelisted torch functions; no eval."""
    allowed = f"x, numbers, + - * / **, {', '.join(EXPR_CONSTANTS)} and {', '.join(EXPR_FUNCTIONS)}(…)"
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ActlabError(f"expression {text!r} is not valid ({exc.msg}); it may use {allowed}") from None
    except (RecursionError, MemoryError):
        tree = None
    if tree is None or _depth(tree) > MAX_EXPRESSION_DEPTH:  # each level is a Python call in every forward pass
        raise ActlabError(f"expression {text[:40]!r}… is too long or too deeply nested to read; write a "
                          f"shorter one, or the activation as package.module:name")

    def build(node: ast.AST) -> Callable[[torch.Tensor], object]:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            value = node.value
            return lambda x: value
        if isinstance(node, ast.Name):
            if node.id == "x":
                return lambda x: x
            if node.id in EXPR_CONSTANTS:
                value = EXPR_CONSTANTS[node.id]
                return lambda x: value
            raise ActlabError(f"expression {text!r}: unknown name {node.id!r}; it may use {allowed}")
        if isinstance(node, ast.BinOp) and type(node.op) in _EXPR_OPS:
            op, left, right = _EXPR_OPS[type(node.op)], build(node.left), build(node.right)
            if isinstance(node.op, ast.Pow):  # numbers alone in floats: 9**9**9 overflows at once, not after hours
                return lambda x: _power(left(x), right(x))
            return lambda x: op(left(x), right(x))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _EXPR_OPS:
            op, operand = _EXPR_OPS[type(node.op)], build(node.operand)
            return lambda x: op(operand(x))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in EXPR_FUNCTIONS \
                and not node.keywords:
            fn, args = EXPR_FUNCTIONS[node.func.id], [build(a) for a in node.args]

            def call(x: torch.Tensor) -> torch.Tensor:
                values = (a(x) for a in args)
                return fn(*(v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=x.dtype, device=x.device)
                            for v in values))
            return call
        what = type(node).__name__
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            what = f"function {node.func.id!r}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            what = f"attribute access (.{node.func.attr})"
        elif isinstance(node, ast.Attribute):
            what = f"attribute access (.{node.attr})"
        raise ActlabError(f"expression {text!r}: {what} is not allowed; it may use {allowed}")

    fn = build(tree)

    def activation(x: torch.Tensor) -> torch.Tensor:
        out = fn(x)
        return out if isinstance(out, torch.Tensor) else torch.full_like(x, float(out))
    return activation


def _power(base: object, exponent: object) -> object:
    if isinstance(base, torch.Tensor) or isinstance(exponent, torch.Tensor):
        return base ** exponent
    return float(base) ** float(exponent)  # raises OverflowError where the number is out of range


class Expression(nn.Module):
    """An activation written as an expression of x (`expr:x*sigmoid(1.702*x)`)."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.fn = text, compile_expression(text)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.text
