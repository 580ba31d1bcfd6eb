"""Bias policies and run specifications (model.md section 1).

A *run* is one (era, address-space count, bias) applied to one trace. Policies
that resolve to the same bias for an era give one run, listed under every
policy name that produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kvmgen.errors import UsageError
from kvmgen.formatting import run_label
from kvmgen.model.eras import Era, InitScheme
from kvmgen.model.versions import KernelChoice

U64 = (1 << 64) - 1
HISTORICAL = "historical"
NONE = "none"
LITERAL_PREFIX = "literal:"
DEFAULT_POLICIES = (HISTORICAL, NONE)


@dataclass(frozen=True)
class Policy:
    """A user's bias choice: ``historical``, ``none``, an integer ``B >= 0``, or ``literal:B``.

    ``literal`` (``--bias literal:B``) applies the old hack as written in every era:
    from E6 on every address space starts at ``-B mod 2^64`` (bit 63 set), instead
    of kvmgen's masked ``(as - B) mod 2^W``. In the other eras it means ``B``.
    """

    name: str
    value: int | None  # None = the era's own historical bias
    literal: bool = False

    def bias_for(self, era: Era) -> int:
        """The integer bias this policy means in ``era``."""
        return era.historical_bias if self.value is None else self.value


def parse_policy(text: str) -> Policy:
    """Parse one ``--bias`` value."""
    word = text.strip().lower()
    if word.startswith(LITERAL_PREFIX):
        inner = parse_policy(word.removeprefix(LITERAL_PREFIX))
        if inner.value is None or inner.name == NONE:
            raise UsageError(f"--bias {text!r}: expected literal:B with an integer B >= 0")
        return Policy(f"{LITERAL_PREFIX}{inner.value}", inner.value, literal=True)
    if word == HISTORICAL:
        return Policy(HISTORICAL, None)
    if word == NONE:
        return Policy(NONE, 0)
    try:
        value = int(word, 0)
    except ValueError:
        raise UsageError(
            f"--bias {text!r}: expected 'historical', 'none', an integer >= 0 or literal:B"
        ) from None
    if value < 0 or value > U64:
        raise UsageError(f"--bias {text!r}: expected an integer from 0 to 2^64-1")
    return Policy(str(value), value)


def parse_policies(values: Iterable[str | Policy] | None) -> list[Policy] | None:
    """Policies from ``--bias`` values (each may be comma-separated), or None for none given."""
    out: list[Policy] = []
    for value in values or ():
        if isinstance(value, Policy):
            out.append(value)
            continue
        out.extend(parse_policy(part) for part in value.split(",") if part.strip())
    return out or None


def with_literal_companions(policies: Sequence[Policy]) -> list[Policy]:
    """``policies`` with ``none`` and ``B`` added after them for every ``literal:B``.

    A literal bias is read against the masked one and no bias (the literal-bias
    section of a report compares the three), so they run whenever it does.
    """
    out = list(policies)
    for policy in policies:
        if policy.literal and policy.value is not None:
            for extra in (Policy(NONE, 0), Policy(str(policy.value), policy.value)):
                if extra not in out:
                    out.append(extra)
    return out


@dataclass(frozen=True)
class RunSpec:
    """Everything the engine and the reference need to know about one run.

    ``bias`` is None for E0 (no MMIO generation). ``init_generations`` holds the
    full 64-bit starting generation of each address space; ``mmio_offset`` is
    the constant E1/E2 add inside the MMIO-generation getter.
    """

    era: Era
    kernel: str | None
    address_spaces: int
    bias: int | None
    policies: tuple[str, ...]
    init_generations: tuple[int, ...]
    mmio_offset: int
    as_shipped: bool
    warnings: tuple[str, ...]
    literal: bool = False  # --bias literal:B in an era where it differs (E6+: bit 63 set)

    @property
    def label(self) -> str:
        """The run's name in every output, e.g. ``E5 (4.19), historical, bias 150``."""
        return self.describe()

    def describe(self, separator: str = ", ") -> str:
        """The run label (:func:`kvmgen.formatting.run_label`), ``separator`` after the era."""
        return run_label(
            self.era.name,
            kernel=self.kernel,
            versions=self.era.versions,
            variant=self.era.variant,
            policies=self.policies,
            bias=self.bias,
            literal=self.literal,
            address_spaces=self.address_spaces,
            default_address_spaces=self.era.default_address_spaces,
            separator=separator,
        )


def literal_applies(era: Era, policy: Policy) -> bool:
    """Whether ``policy`` is ``literal:B`` in an era where that differs from ``B`` (E6+)."""
    return (
        policy.literal
        and era.has_mmio_generation
        and era.init_scheme == InitScheme.AS_MINUS_BIAS_TRUNCATED
    )


def initial_generations(era: Era, nas: int, bias: int, *, literal: bool = False) -> tuple[int, ...]:
    """Starting full generation per address space for ``bias`` (model.md section 1).

    With ``literal`` an E6+ era starts every address space at ``-bias mod 2^64``.
    """
    if literal and era.init_scheme == InitScheme.AS_MINUS_BIAS_TRUNCATED:
        return tuple((-bias) & U64 for _ in range(nas))
    if era.init_scheme == InitScheme.ZERO:
        return tuple(0 for _ in range(nas))
    if era.init_scheme == InitScheme.MINUS_BIAS:
        return tuple((-bias) & U64 for _ in range(nas))
    if era.init_scheme == InitScheme.TWICE_AS_MINUS_BIAS:
        return tuple((2 * a - bias) & U64 for a in range(nas))
    return tuple((a - bias) & era.nominal_mask for a in range(nas))


def getter_offset(era: Era, bias: int) -> int:
    """E1/E2 add ``2^19 - 1 - B`` to the generation when B > 0 (the 3.11 getter)."""
    if not era.bias_in_getter or bias == 0:
        return 0
    return ((1 << era.nominal_width) - 1 - bias) & era.nominal_mask


def check_address_spaces(era: Era, nas: int, choice: KernelChoice | None) -> None:
    """Refuse an address-space count the chosen kernel could not have."""
    allowed = set(era.allowed_address_spaces)
    if choice is not None and choice.version[:2] < (6, 2):
        allowed &= {2} if era.default_address_spaces == 2 else {1}
    if nas not in allowed:
        origin = f"kernel {choice.kernel}" if choice else f"era {era.name}"
        want = " or ".join(str(n) for n in sorted(allowed))
        raise UsageError(f"address spaces {nas}: {origin} has {want}")


def _literal_warning(era: Era, nas: int, bias: int) -> str:
    start = (-bias) & U64
    note = (
        f"literal bias: the old hack as written, hypothetical for {era.name}: every address "
        f"space starts at -{bias} mod 2^64 = {start:#x}"
    )
    # A bump leaves (g & ~2^63) + NAS: counting up sets bit 63 again at bump k.
    k = -(-((1 << 63) - (start & ((1 << 63) - 1))) // nas)
    if not start >> 63 and k > 1 << 48:
        return note + " (bit 63 clear: no bump of a real VM sets it at rest)"
    first = "at creation and " if start >> 63 else ""
    return (
        note + f"; bit 63 (update in progress) is set at rest {first}after each address "
        f"space's bump {k:,}, until its next bump: meanwhile every MMIO check fails and "
        "nothing is cached"
    )


def _warnings(era: Era, bias: int, requested: list[Policy], nas: int = 1) -> list[str]:
    notes = []
    if not era.has_mmio_generation:
        if any(p.value for p in requested):
            notes.append("E0 has no MMIO generation: a bias does not apply")
        return notes
    if any(literal_applies(era, p) for p in requested):
        notes.append(_literal_warning(era, nas, bias))
    elif era.init_scheme == InitScheme.AS_MINUS_BIAS_TRUNCATED and bias:
        notes.append(
            f"hypothetical policy: {era.name} never shipped a bias; kvmgen starts address "
            f"space i at (i - {bias}) mod 2^{era.nominal_width} because -{bias} would set "
            "bit 63, the update-in-progress flag"
        )
    if era.init_scheme in (InitScheme.MINUS_BIAS, InitScheme.TWICE_AS_MINUS_BIAS) and bias % 2:
        notes.append(
            f"bias {bias} is odd: the generation is odd at rest, so every generation check fails"
        )
    return notes


def resolve_runs(
    era: Era,
    nas: int,
    policies: list[Policy],
    choice: KernelChoice | None = None,
) -> list[RunSpec]:
    """Turn the requested policies into distinct runs for ``era``, in request order."""
    by_bias: dict[tuple[int | None, bool], list[Policy]] = {}
    for policy in policies:
        bias = policy.bias_for(era) if era.has_mmio_generation else None
        key = (bias, literal_applies(era, policy))
        by_bias.setdefault(key, [])
        if policy not in by_bias[key]:
            by_bias[key].append(policy)
    runs = []
    for (bias, as_written), group in by_bias.items():
        literal = 0 if bias is None else bias
        runs.append(
            RunSpec(
                era=era,
                kernel=choice.kernel if choice else None,
                address_spaces=nas,
                bias=bias,
                policies=tuple(p.name for p in group),
                init_generations=initial_generations(era, nas, literal, literal=as_written),
                mmio_offset=getter_offset(era, literal),
                as_shipped=not as_written and (bias is None or bias == era.historical_bias),
                warnings=tuple(
                    ([*choice.notes] if choice else []) + _warnings(era, literal, group, nas)
                ),
                literal=as_written,
            )
        )
    return runs
