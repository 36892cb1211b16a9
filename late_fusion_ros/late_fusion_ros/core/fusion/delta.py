# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Running sums behind the strategies' delta updates: one term replaced per arrival.

An arrival changes one modality's term, so a strategy whose fused state is a sum over the
modalities keeps that sum and swaps the one term, instead of summing all modalities again.
Two kinds:

- RunningSum: a plain sum of per-modality vectors over the modalities in use (the
  meta-learner's first layer).
- DecayedSoftmaxSum: sum_m a_m v_m / sum_m a_m with a_m = exp(base_m) * decay_m(age_m),
  the attention pooling, whose weights change with `now` for every modality at once. It
  stays incremental because the time factors out per decay setting:
  exponential, exp(base_m) exp(-(now - stamp_m) / tau) = exp(base_m + (stamp_m - t0) / tau)
  * exp(-(now - t0) / tau), where only the last factor depends on `now` and is the same for
  every modality with that tau ('none' is tau = infinity); linear, exp(base_m) (stamp_m +
  max_age_m - now) / max_age_m is affine in `now`, so two sums per numerator and
  denominator. Each group keeps its sums relative to a running maximum of its exponents
  (no overflow, no underflow of the largest term) and combines with the others at `now`.

Removing a term from a sum it dominated would leave mostly rounding error (catastrophic
cancellation), and rounding piles up over many replacements: a weighted sum tracks how much
weight has passed through it since it was last built, and is rebuilt from its members once
that exceeds what it holds by CANCEL_LIMIT, or after OPS_LIMIT replacements, so results
stay within ~1e-9 of summing from scratch. Membership (fresh, with a term, weight > 0) is
what the caller passes on each fuse; modalities that went stale or came back are removed or
added then.
"""

import math
from typing import Optional, Sequence

import numpy as np

from .datatypes import ModalityConfig

# A weighted sum is rebuilt from its members once the weight added to and removed from it
# since it was built outweighs what it holds by this factor (each removal's rounding error is
# relative to what the sum held before), and any sum after this many replacements (each one
# rounds relative to the sum's size): the relative error stays below ~(2^20 + 2^16) * 2^-52,
# 2.5e-10.
CANCEL_LIMIT = 2.0 ** 20
OPS_LIMIT = 2 ** 16
# An exponential group moves its time origin to `now` (a rebuild) once `now` is this many
# time constants past it, so that its exponents stay small numbers and keep float64's
# precision however long the stream runs.
REBASE_TAUS = 256.0


class RunningSum:
    """
    Sum of per-modality vectors over the modalities in use, updated one term at a time.

    `put(i, row)` replaces modality i's vector (None: it has none); `total(want)` brings the
    sum to the modalities in the boolean mask `want` by adding and removing only those that
    changed. Its terms have either sign, so what matters is the absolute error: after at most
    OPS_LIMIT replacements it is rebuilt from its members, which keeps that error below
    ~OPS_LIMIT * 2^-52 (1.5e-11) times the sum of its rows' sizes.
    """

    def __init__(self, n: int, width: int):
        """Size the sum for n modalities of vectors of length width."""
        self.rows = np.zeros((n, width))
        self.keys = [None] * n
        self.member = np.zeros(n, bool)
        self.sum = np.zeros(width)
        self.count = 0
        self.ops = 0  # additions and removals since the last rebuild

    def put(self, i: int, row: Optional[np.ndarray], key=None) -> None:
        """
        Replace modality i's vector (it joins the sum at the next total).

        The same vector under the same `key` (not None; the input's stamp, say) again
        changes nothing: a full recomputation re-projecting an unchanged input.
        """
        if (key is not None and key == self.keys[i] and self.member[i]
                and np.array_equal(row, self.rows[i])):
            return
        self.drop(i)
        self.rows[i] = 0.0 if row is None else row
        self.keys[i] = key

    def drop(self, i: int) -> None:
        """Take modality i's vector out of the sum, if it is in."""
        if not self.member[i]:
            return
        self.member[i] = False
        self.count -= 1
        if not self.count:
            self.sum[:] = 0.0  # empty: exactly zero, whatever rounding had left
            self.ops = 0
            return
        self.sum -= self.rows[i]
        self.ops += 1

    def total(self, want: np.ndarray) -> np.ndarray:
        """Return the sum of the rows of the modalities in `want` (read-only for the caller)."""
        for i in np.flatnonzero(want != self.member).tolist():
            if want[i]:
                self.member[i] = True
                self.count += 1
                self.sum += self.rows[i]
                self.ops += 1
            else:
                self.drop(i)
        if self.ops > OPS_LIMIT:
            self.sum = self.member.astype(np.float64) @ self.rows
            self.ops = 0
        return self.sum


class _ExpGroup:
    """
    The terms of the modalities sharing one exponential time constant ('none': 1/tau = 0).

    Term m: e_m = exp(base_m + (stamp_m - t0) / tau - ref); its weight at `now` is
    exp(ref - (now - t0) / tau) * e_m. den = sum e_m, num = sum e_m v_m.
    """

    __slots__ = ('inv_tau', 'count', 'ref', 't0', 'den', 'num', 'mass', 'ops')

    def __init__(self, inv_tau: float, width: int):
        self.inv_tau = inv_tau
        self.count = self.ops = 0
        self.ref = self.t0 = self.den = self.mass = 0.0
        self.num = np.zeros(width)

    def clear(self) -> None:
        # Empty: exactly zero, whatever rounding had left.
        self.den = self.mass = 0.0
        self.num[:] = 0.0
        self.ops = 0

    def exponent(self, base: float, stamp: float) -> float:
        return base + (stamp - self.t0) * self.inv_tau

    def log_scale(self, now: float) -> float:
        return self.ref - (now - self.t0) * self.inv_tau

    def worn(self, now: float) -> bool:
        """Whether to rebuild: rounding may have piled up, or the time origin is far."""
        return (not self.den > 0.0 or self.mass > CANCEL_LIMIT * self.den
                or self.ops > OPS_LIMIT or abs(now - self.t0) * self.inv_tau > REBASE_TAUS)


class _LinearGroup:
    """
    The terms of all linearly decaying modalities.

    Term m: e_m = exp(base_m - log(max_age_m) - ref), and its weight at `now` is
    exp(ref) * e_m * (alpha_m - (now - t0)), alpha_m = stamp_m + max_age_m - t0 (its
    remaining life at t0). den = [sum e alpha, sum e], num likewise with e v.
    """

    __slots__ = ('count', 'ref', 't0', 'den', 'num', 'mass', 'ops')

    def __init__(self, width: int):
        self.count = self.ops = 0
        self.ref = self.t0 = 0.0
        self.den = np.zeros(2)
        self.num = np.zeros((2, width))
        self.mass = np.zeros(2)   # [sum e |alpha|, sum e] added and removed

    def clear(self) -> None:
        self.den[:] = self.mass[:] = 0.0
        self.num[:] = 0.0
        self.ops = 0


class DecayedSoftmaxSum:
    """
    sum_m a_m v_m / sum_m a_m over the modalities in use, updated one term at a time.

    a_m = exp(base_m) * decay_m(now - stamp_m), with decay as the engine computes it
    (decay_factor): exponential, linear or none per ModalityConfig, and no decay for a
    stamp ahead of `now` (clock skew). `put(i, base, stamp, v)` replaces modality i's term;
    `combine(now, want)` returns the weighted mean of the vectors of the modalities in
    `want` (all must have a term and a weight > 0 at `now`). See the module docstring.
    """

    def __init__(self, configs: Sequence[ModalityConfig], width: int):
        """One term slot per modality of `configs`, vectors of length `width`."""
        n = len(configs)
        self.values = np.zeros((n, width))
        self.base = [0.0] * n
        self.stamp = np.zeros(n)
        self.member = np.zeros(n, bool)
        self.max_age = [c.max_age for c in configs]
        self.log_max_age = [math.log(c.max_age) for c in configs]
        self.linear = _LinearGroup(width)
        self.groups: list = []   # the exponential groups, one per distinct 1 / tau
        by_inv_tau = {}
        self.group_of: list = []  # each modality's group
        for cfg in configs:
            if cfg.decay == 'linear':
                self.group_of.append(self.linear)
                continue
            inv_tau = 1.0 / cfg.time_constant if cfg.decay == 'exponential' else 0.0
            if inv_tau not in by_inv_tau:
                by_inv_tau[inv_tau] = _ExpGroup(inv_tau, width)
                self.groups.append(by_inv_tau[inv_tau])
            self.group_of.append(by_inv_tau[inv_tau])
        self.live: list = []      # exponential groups with members
        # An upper bound of the stamps put: while `now` is past it, no term is ahead of `now`.
        self.latest = -math.inf

    # -- terms ------------------------------------------------------------------------------

    def put(self, i: int, base: float, stamp: float, value: np.ndarray) -> None:
        """Replace modality i's term (it joins the sums at the next combine); same one: no-op."""
        if (self.member[i] and base == self.base[i] and stamp == self.stamp[i]
                and np.array_equal(value, self.values[i])):
            return  # e.g. a full recomputation re-projecting an unchanged input
        self.drop(i)
        self.base[i] = base
        self.stamp[i] = stamp
        self.values[i] = value
        self.latest = max(self.latest, stamp)

    def drop(self, i: int) -> None:
        """Take modality i's term out of the sums, if it is in."""
        if not self.member[i]:
            return
        self.member[i] = False
        group = self.group_of[i]
        group.count -= 1
        if group is self.linear:
            if group.count:
                self._lin_step(i, -1.0)
            else:
                group.clear()
            return
        if not group.count:
            group.clear()
            self.live.remove(group)
            return
        e = math.exp(group.exponent(self.base[i], self.stamp[i]) - group.ref)
        group.den -= e
        group.num -= e * self.values[i]
        group.mass += e
        group.ops += 1

    def _add(self, i: int, now: float) -> None:
        self.member[i] = True
        group = self.group_of[i]
        group.count += 1
        if group is self.linear:
            if group.count == 1:
                group.t0, group.ref = now, self.base[i] - self.log_max_age[i]
            self._lin_step(i, 1.0)
            return
        if group.count == 1:
            group.t0 = now
            group.ref = group.exponent(self.base[i], self.stamp[i])
            self.live.append(group)
        exponent = group.exponent(self.base[i], self.stamp[i])
        if exponent > group.ref:
            # A new largest term: move the reference up so every stored term stays <= 1.
            scale = math.exp(group.ref - exponent)
            group.den *= scale
            group.num *= scale
            group.mass *= scale
            group.ref = exponent
        e = math.exp(exponent - group.ref)
        group.den += e
        group.num += e * self.values[i]
        group.mass += e
        group.ops += 1

    def _lin_step(self, i: int, sign: float) -> None:
        """Add (sign 1) or remove (sign -1) modality i's term in the linear group."""
        group = self.linear
        exponent = self.base[i] - self.log_max_age[i]
        if sign > 0.0 and exponent > group.ref:
            scale = math.exp(group.ref - exponent)
            for a in (group.den, group.num, group.mass):
                a *= scale
            group.ref = exponent
        e = math.exp(exponent - group.ref)
        # Stamp minus origin first: with epoch stamps, stamp + max_age would round to 2e-7 s.
        pair = np.array([e * ((self.stamp[i] - group.t0) + self.max_age[i]), e])
        group.den += sign * pair
        group.num += np.multiply.outer(sign * pair, self.values[i])
        group.mass += np.abs(pair)
        group.ops += 1

    # -- rebuilds ---------------------------------------------------------------------------

    def _members(self, group) -> np.ndarray:
        return np.flatnonzero(self.member & np.fromiter(
            (g is group for g in self.group_of), bool, len(self.group_of)))

    def _rebuild(self, group: _ExpGroup, now: float) -> None:
        """Sum an exponential group from its members, with its time origin at `now`."""
        idx = self._members(group)
        group.t0 = now
        exponent = np.array([self.base[i] for i in idx.tolist()]) + \
            (self.stamp[idx] - now) * group.inv_tau
        group.ref = float(exponent.max())
        e = np.exp(exponent - group.ref)
        group.den = group.mass = float(e.sum())
        group.num = e @ self.values[idx]
        group.ops = 0

    def _lin_rebuild(self, now: float) -> None:
        """Sum the linear group from its members, with its time origin at `now`."""
        group = self.linear
        idx = self._members(group).tolist()
        exponent = np.array([self.base[i] - self.log_max_age[i] for i in idx])
        group.t0, group.ref = now, float(exponent.max())
        e = np.exp(exponent - group.ref)
        alpha = (self.stamp[idx] - now) + np.array([self.max_age[i] for i in idx])
        pair = np.stack([e * alpha, e])
        group.den = pair.sum(1)
        group.num = pair @ self.values[idx]
        group.mass = np.abs(pair).sum(1)
        group.ops = 0

    # -- fusing -----------------------------------------------------------------------------

    def combine(self, now: float, want: np.ndarray) -> Optional[np.ndarray]:
        """Return the weighted mean of the vectors of the modalities in `want` at `now`."""
        ahead = None
        if self.latest > now:
            # Stamps ahead of `now` have no decay yet: kept out of the time-factored sums.
            ahead = want & (self.stamp > now)
            if ahead.any():
                want = want & ~ahead
            else:
                ahead = None
                self.latest = float(self.stamp.max())
        for i in np.flatnonzero(want != self.member).tolist():
            if want[i]:
                self._add(i, now)
            else:
                self.drop(i)
        if ahead is None and not self.linear.count and len(self.live) == 1:
            group = self.live[0]  # the common case: one decay setting, nothing ahead
            if group.worn(now):
                self._rebuild(group, now)
            return group.num / group.den
        parts = []  # (log scale, den, num) of each group at `now`
        for group in self.live:
            if group.worn(now):
                self._rebuild(group, now)
            parts.append((group.log_scale(now), group.den, group.num))
        if self.linear.count:
            parts.append(self._lin_part(now))
        if ahead is not None:
            idx = np.flatnonzero(ahead)
            base = np.array([self.base[i] for i in idx.tolist()])
            ref = float(base.max())
            e = np.exp(base - ref)
            parts.append((ref, float(e.sum()), e @ self.values[idx]))
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0][2] / parts[0][1]
        # sum_p exp(ref_p) num_p / sum_p exp(ref_p) den_p, scaled by the largest
        # exp(ref_p) den_p so that nothing overflows.
        refs = np.array([p[0] for p in parts])
        dens = np.array([p[1] for p in parts])
        scale = np.exp(refs - (refs + np.log(dens)).max())
        return (scale @ np.array([p[2] for p in parts])) / float(scale @ dens)

    def _lin_part(self, now: float) -> tuple:
        """(log scale, den, num) of the linear group at `now`."""
        group = self.linear
        lag = now - group.t0
        den = group.den[0] - lag * group.den[1]
        # den subtracts two sums: its rounding error is ~2^-52 times what went through them.
        bound = group.mass[0] + abs(lag) * group.mass[1]
        if not den > 0.0 or bound > CANCEL_LIMIT * den or group.ops > OPS_LIMIT:
            self._lin_rebuild(now)
            lag, den = 0.0, group.den[0]
        return group.ref, float(den), group.num[0] - lag * group.num[1]
