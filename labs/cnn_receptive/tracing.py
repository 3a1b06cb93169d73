"""Tracing a model with ``torch.fx``, and the meta pass that gives every node's output shape
without computing anything.

This is the plumbing under the calculator. The calculator only reads the graph: it traces
without building a ``GraphModule`` (:func:`trace_for_calculator`) and runs the meta pass
node by node (:class:`MetaPass`), so that nothing downstream of a layer it gave up on runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.fx as fx
from torch import nn
from torch.fx import traceback as fx_traceback
from torch.nn import functional as F

from .geometry import ReceptiveFieldError
from .rules import ADAPTIVE, CAST_METHODS, POINTWISE_FUNCS, POINTWISE_METHODS, SAME_MODULES, nd

T = TypeVar("T")
#: Arguments fx records as they are.
_PLAIN = (int, float, bool, str, type(None))


def _as_module(model: nn.Module | Sequence[nn.Module]) -> nn.Module:
    if isinstance(model, nn.Module):
        return model
    return nn.Sequential(*model)


def trace(model: nn.Module | Sequence[nn.Module]) -> fx.GraphModule:
    """A ``torch.fx`` graph of ``model`` (a module, or a list of layers run in sequence)."""
    module = _as_module(model)
    if isinstance(module, fx.GraphModule):
        return module
    try:
        return fx.symbolic_trace(module)
    except Exception as exc:  # fx raises many types for data-dependent control flow
        raise ReceptiveFieldError(f"cannot trace {type(module).__name__} with torch.fx: {exc}") from exc


class _Tracer(fx.Tracer):
    """torch.fx's tracer, lighter where the calculator allows: it finds the name of a
    parameter or buffer a forward reads directly (ConvNeXt's layer scale, a ViT's class
    token) in a table instead of walking every parameter of the model each time (over the
    zoo the walk was a fifth of the tracing), and keeps no per-node metadata. The graph, its
    nodes and their names are those ``fx.symbolic_trace`` gives."""

    def trace(self, root: Any, concrete_args: Any = None) -> fx.Graph:
        self._names: dict[int, str] = {}
        if isinstance(root, nn.Module):
            buffers, parameters = _tensor_names(root)
            self._names = {**buffers, **parameters}  # a parameter's name wins (fx looks them up first)
            self._parameters = set(parameters)
        return super().trace(root, concrete_args)

    def _name_of(self, value: torch.Tensor) -> str | None:
        if isinstance(value, nn.Parameter) != (id(value) in self._parameters):
            return None  # a parameter not registered as one, or a buffer of parameter type
        return self._names.get(id(value))

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if self.param_shapes_constant or not isinstance(attr_val, torch.Tensor):
            return super().getattr(attr, attr_val, parameter_proxy_cache)
        if not isinstance(attr_val, nn.Parameter) and not self.proxy_buffer_attributes:
            return attr_val
        name = self._name_of(attr_val)
        if name is None:
            return super().getattr(attr, attr_val, parameter_proxy_cache)
        if name not in parameter_proxy_cache:
            parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
        return parameter_proxy_cache[name]

    def create_node(
        self, kind: str, target: Any, args: Any, kwargs: Any, name: Any = None, type_expr: Any = None
    ):
        if (
            self.check_mutable_operations
            or self.record_stack_traces
            or fx_traceback.has_preserved_node_meta()
        ):
            return super().create_node(kind, target, args, kwargs, name, type_expr)
        # The node alone: fx also copies the stack of modules it is in into its metadata
        # (a tenth of the tracing time), which the calculator never reads.
        return self.graph.create_node(kind, target, args, kwargs, name, type_expr)

    def create_arg(self, a: Any) -> Any:
        kind = type(a)
        if kind is fx.Proxy:  # most arguments: fx would try a dozen other types first
            return a.node
        if kind in _PLAIN:
            return a
        if kind is tuple:
            return tuple(self.create_arg(x) for x in a)
        if isinstance(a, torch.Tensor):
            name = self._name_of(a)
            if name is not None:
                return self.create_node("get_attr", name, (), {})
        return super().create_arg(a)


def _tensor_names(root: nn.Module) -> tuple[dict[int, str], dict[int, str]]:
    """(buffers, parameters) of ``root``, each ``id(tensor) -> name`` with the names
    ``named_buffers()`` and ``named_parameters()`` give (a tensor shared by several modules
    under its first name), from one walk of the module tree instead of three."""
    buffers: dict[int, str] = {}
    parameters: dict[int, str] = {}
    for prefix, module in root.named_modules():
        dot = f"{prefix}." if prefix else ""
        for table, found in ((module._buffers, buffers), (module._parameters, parameters)):
            for key, tensor in table.items():
                if tensor is not None and id(tensor) not in found:
                    found[id(tensor)] = dot + key
    return buffers, parameters


def trace_for_calculator(model: nn.Module | Sequence[nn.Module]) -> tuple[nn.Module, fx.Graph]:
    """The module and its ``torch.fx`` graph, as :func:`trace` gives them but without building
    a ``GraphModule``: the calculator interprets the graph node by node, and building the
    graph module (copying the module tree, generating its code) costs a tenth of its time.
    The graph's nodes and names are those of :func:`trace`."""
    module = _as_module(model)
    if isinstance(module, fx.GraphModule):
        return module, module.graph
    try:
        return module, _Tracer().trace(module)
    except Exception as exc:  # fx raises many types for data-dependent control flow
        raise ReceptiveFieldError(f"cannot trace {type(module).__name__} with torch.fx: {exc}") from exc


def first_module(root: nn.Module, graph: fx.Graph, types: tuple[type, ...]) -> nn.Module | None:
    """The first module of ``types`` in the order ``GraphModule(root, graph).modules()``
    gives them, without building the graph module: fx builds its module tree from the
    targets of the graph's ``call_module`` and ``get_attr`` nodes, in node order."""
    if isinstance(root, fx.GraphModule):
        return next((m for m in root.modules() if isinstance(m, types)), None)
    tree: dict[str, list[Any]] = {}  # name -> [the module, or None for a container fx adds; children]
    containers: dict[str, Any] = {}  # dotted path -> the module there (nodes share their parents)
    for node in graph.nodes:
        if node.op not in ("call_module", "get_attr"):
            continue
        *prefix, last = str(node.target).split(".")
        source, children, path = root, tree, ""
        for item in prefix:
            path = f"{path}.{item}" if path else item
            parent = source
            source = containers.get(path)
            if source is None:
                source = containers[path] = getattr(parent, item)
            entry = children.setdefault(item, [None, {}])
            if entry[0] is source:
                break  # a parent is in the tree already, and with it this target
            children = entry[1]
        else:
            value = getattr(source, last)
            if isinstance(value, nn.Module):
                children[last] = [value, {}]  # in place of a container of the same name
            else:
                children.pop(last, None)

    def walk(children: dict[str, list[Any]]) -> nn.Module | None:
        for module, grandchildren in children.values():
            if module is None:
                found = walk(grandchildren)
            else:
                found = next((m for m in module.modules() if isinstance(m, types)), None)
            if found is not None:
                return found
        return None

    return walk(tree)


def describe(module: nn.Module) -> str:
    """A short description of a module's geometry: ``Conv2d 11x11 s4 p0``."""
    name = type(module).__name__
    k = getattr(module, "kernel_size", None)
    if k is None or isinstance(module, ADAPTIVE):
        size = getattr(module, "output_size", None)
        return f"{name}({size})" if size is not None else name
    d = len(k) if isinstance(k, tuple) else 1
    parts = [name, "x".join(map(str, nd(k, d)))]
    s = nd(getattr(module, "stride", 1) or k, d)
    parts.append("s" + "x".join(map(str, s)))
    p = getattr(module, "padding", 0)
    parts.append("p" + (p if isinstance(p, str) else "x".join(map(str, nd(p, d)))))
    dil = nd(getattr(module, "dilation", 1), d)
    if any(x != 1 for x in dil):
        parts.append("d" + "x".join(map(str, dil)))
    if getattr(module, "ceil_mode", False):
        parts.append("ceil")
    return " ".join(parts)


class Submodules:
    """``get_submodule`` of a module, remembered: each node looks its module up three
    times (label, meta pass, rule), and the path walk adds up over a large model."""

    def __init__(self, gm: nn.Module):
        self._gm = gm
        self._found: dict[str, nn.Module] = {}

    def get_submodule(self, target: str) -> nn.Module:
        try:
            return self._found[target]
        except KeyError:
            mod = self._found[target] = self._gm.get_submodule(target)
            return mod


def node_label(gm: fx.GraphModule | Submodules, node: fx.Node) -> tuple[str, str, str]:
    """(name, description, module type) of a node for the report."""
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        return str(node.target), describe(mod), type(mod).__name__
    if node.op == "call_function":
        fname = getattr(node.target, "__name__", str(node.target))
        return node.name, fname, fname
    if node.op == "call_method":
        return node.name, f".{node.target}()", str(node.target)
    return node.name, node.op, node.op


class MetaPass:
    """The output of each node of ``graph`` for an input of ``shape``, on the meta device (no
    compute), node by node in graph order as the calculator asks for them: a node downstream
    of a layer the calculator gave up on is never run (for a ViT or a Swin transformer that is
    most of the graph). After the first node that cannot run, :attr:`error` holds the first
    line of its error, as ``torch.fx.Interpreter.run`` words it, and no later node runs.

    Run it inside :func:`on_meta_device` when the model has real weights."""

    def __init__(
        self, root: nn.Module, graph: fx.Graph, shape: tuple[int, ...], modules: Submodules | None = None
    ):
        self.values: dict[str, Any] = {}
        self.error = ""
        interp = self._interp = _MetaInterpreter(root, garbage_collect_values=False, graph=graph)
        interp.modules = modules
        interp.env = {}
        interp.args_iter = iter((torch.empty(shape, device="meta"),))

    def run(self, node: fx.Node) -> bool:
        """Run ``node`` (its inputs ran before it); False when it or an earlier node failed."""
        if self.error:
            return False
        try:
            value = self._interp.run_node(node)
        except Exception as exc:
            self.error = _interpreter_error_line(exc, node)
            return False
        self._interp.env[node] = self.values[node.name] = value
        return True


class _MetaInterpreter(fx.Interpreter):
    modules: Submodules | None = None

    def run_node(self, n: fx.Node) -> Any:
        result = _cheap_meta(self, n, self.modules)
        return super().run_node(n) if result is None else result


def _interpreter_error_line(exc: Exception, node: fx.Node) -> str:
    """The first line of ``exc`` as ``fx.Interpreter.run`` re-raises it (the error's first
    argument, or where it happened when it has none; a KeyError becomes a RuntimeError)."""
    where = f"While executing {node.format_node()}"
    args = (f"{exc.args[0]}\n\n{where}" if exc.args else where, *exc.args[1:])
    message = str(RuntimeError(*args) if isinstance(exc, KeyError) else _with_args(exc, args)).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def _with_args(exc: Exception, args: tuple[Any, ...]) -> Exception:
    exc.args = args
    return exc


def on_meta_device(root: nn.Module, fn: Callable[[], T]) -> T:
    """``fn()`` with every parameter and buffer of ``root`` swapped for an empty tensor on the
    meta device (no copy: the model is left as it was). A model built on the meta device (as
    the survey builds them) runs as it is."""
    if _all_on_meta(root):
        return fn()

    class Runner(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self) -> T:
            return fn()

    runner = Runner(root)
    tensors = [*runner.named_parameters(), *runner.named_buffers()]
    state = {name: torch.empty_like(t, device="meta") for name, t in tensors}
    return torch.func.functional_call(runner, state, ())


def _all_on_meta(root: nn.Module) -> bool:
    """Whether every parameter and buffer of ``root`` is on the meta device (one walk of the
    module tree, not one for the parameters and one for the buffers)."""
    return all(
        tensor is None or tensor.is_meta
        for module in root.modules()
        for table in (module._parameters, module._buffers)
        for tensor in table.values()
    )


def _cheap_meta(interp: fx.Interpreter, n: fx.Node, modules: Submodules | None = None) -> Any:
    """The meta output of a layer that keeps its input's shape, without running it: meta
    kernels of element-wise ops go through Python decompositions and would dominate the
    calculator's time. ``None`` when the node has to run."""
    if n.op == "call_module":
        mod = (modules or interp.module).get_submodule(n.target)
        if n.kwargs or len(n.args) != 1 or not isinstance(n.args[0], fx.Node):
            return None
        value = interp.env[n.args[0]]
        if not isinstance(value, torch.Tensor):
            return None
        if isinstance(mod, SAME_MODULES + (nn.LayerNorm,)):
            return value
        shape = _module_out_shape(mod, value)
        return None if shape is None else torch.empty(shape, dtype=value.dtype, device="meta")
    if n.op == "call_function" and n.target is F.layer_norm:
        value = interp.env[n.args[0]]
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    pointwise = (n.op == "call_function" and n.target in POINTWISE_FUNCS) or (
        n.op == "call_method" and n.target in POINTWISE_METHODS and n.target not in CAST_METHODS
    )
    if not pointwise or n.kwargs:
        return None
    values = [interp.env[a] if isinstance(a, fx.Node) else a for a in n.args]
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors or any(not isinstance(v, (torch.Tensor, int, float, bool)) for v in values):
        return None
    shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    return torch.empty(shape, dtype=tensors[0].dtype, device="meta")


def _module_out_shape(mod: nn.Module, x: torch.Tensor) -> tuple[int, ...] | None:
    """The output shape of a convolution, linear layer or adaptive average pooling on ``x``,
    worked out from the layer's own geometry (running their meta kernels is most of the cost
    of the meta pass); ``None`` for anything unusual, which then runs for real (and raises
    PyTorch's own error where the input does not fit)."""
    t = type(mod)
    if t in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        d = len(mod.kernel_size)
        w = mod.weight
        if x.dim() != d + 2 or x.shape[1] != mod.in_channels or x.dtype != w.dtype or x.numel() == 0:
            return None
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str) or not _weights_fit(mod, w.shape[0]):
            return None
        if (
            w.dim() != d + 2
            or w.shape[1] * mod.groups != mod.in_channels
            or tuple(w.shape[2:]) != mod.kernel_size
        ):
            return None
        if min(mod.stride) < 1 or min(mod.dilation) < 1 or min(mod.padding) < 0:
            return None
        sizes = []
        for n, k, st, p, dil in zip(
            x.shape[2:], mod.kernel_size, mod.stride, mod.padding, mod.dilation, strict=True
        ):
            span = n + 2 * p - dil * (k - 1) - 1
            if span < 0:
                return None
            sizes.append(span // st + 1)
        return (x.shape[0], w.shape[0], *sizes)
    if t is nn.Linear:
        w = mod.weight
        if x.dim() < 1 or x.dtype != w.dtype or w.shape != (mod.out_features, mod.in_features):
            return None
        if x.shape[-1] != mod.in_features or not _weights_fit(mod, mod.out_features):
            return None
        return (*x.shape[:-1], mod.out_features)
    if t in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d):
        d = 1 if t is nn.AdaptiveAvgPool1d else 2
        if x.dim() != d + 2 or any(n < 1 for n in x.shape[1:]) or not x.dtype.is_floating_point:
            return None
        out = nd(mod.output_size, d)
        if len(out) != d or any(o is not None and (not isinstance(o, int) or o < 1) for o in out):
            return None
        return (*x.shape[:2], *(n if o is None else o for n, o in zip(x.shape[2:], out, strict=True)))
    return None


def _weights_fit(mod: nn.Module, out: int) -> bool:
    """Whether a layer's bias (if any) matches its ``out`` outputs, on the weight's dtype."""
    bias = mod.bias
    return bias is None or (bias.shape == (out,) and bias.dtype == mod.weight.dtype)


def run_nodes(gm: fx.GraphModule, x: torch.Tensor, names: set[str] | None = None) -> dict[str, Any]:
    """Run ``gm`` on ``x`` and return the outputs of the fx nodes called ``names`` (all when
    ``None``), keeping the autograd graph. Stops after the last node asked for."""
    outputs: dict[str, Any] = {}
    wanted = set(names) if names is not None else None

    class Done(Exception):
        pass

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            result = super().run_node(n)
            if wanted is None or n.name in wanted:
                outputs[n.name] = result
                if wanted is not None and len(outputs) == len(wanted):
                    raise Done
            return result

    try:
        Recorder(gm).run(x)
    except Done:
        pass
    return outputs
