# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Fusion node: one plain subscription per modality, a fused output on every arrival."""

from collections import deque
from functools import partial
import struct
import threading
import time
from typing import Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticStatus
from late_fusion_msgs.msg import Embedding, FusionOutput, ModalityState, Transcript
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.serialization import deserialize_message

from .fusion_wire import FusionOutputWriter, parse_embedding
from ..core.clock_offset import ClockOffsetEstimator
from ..core.fusion import (EmbeddingInput, FusionConfig, FusionEngine, FusionResult, make_strategy,
                           ModalityConfig, STRATEGIES)
from ..shared.diagnostics import ThrottledLog
from ..shared.lifecycle import ManagedNode, spin_node
from ..shared.messages import now_sec, stamp_to_sec
from ..shared.parameters import declare
from ..shared.qos import declare_subscription_qos_overrides, EMBEDDING_QOS, qos_override

try:  # a ROS install has message_filters; the PyPI wheels do not
    import message_filters
except ImportError:
    message_filters = None

_MODALITY_PARAMS = ('prior', 'max_age', 'decay', 'time_constant', 'dim')


def embedding_to_input(msg: Embedding) -> EmbeddingInput:
    """
    Turn an Embedding into the engine's input (used by the node and fusion_offline alike).

    The modality it names is kept as it is: the engine is told the topic it arrived on and
    rejects a name that is not that topic's there (an encoder left at its default
    `modality` but remapped onto another modality's topic).
    """
    return EmbeddingInput(
        modality=msg.modality, seq=msg.seq, stamp=stamp_to_sec(msg.header.stamp),
        data=np.asarray(msg.data, np.float32), labels=list(msg.labels),
        scores=np.asarray(msg.scores, np.float32), encoder_id=msg.encoder_id,
        frame_id=msg.header.frame_id)


def _set_stamp(stamp, t: float) -> None:
    """Write float seconds into an existing builtin_interfaces/Time (non-negative)."""
    ns = max(0, int(round(t * 1e9)))
    stamp.sec, stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000


_NO_TRANSCRIPT = Transcript()


def fusion_output_msg(fused: FusionResult, frame_id: str, now: float,
                      transcript: Optional[Transcript] = None,
                      out: Optional[FusionOutput] = None) -> FusionOutput:
    """
    Build the FusionOutput of an engine result fused at `now` (seconds, the node's clock).

    `transcript` is the latest final one, carried along with its age. `capture_to_output
    _latency` is `now` minus the trigger's capture stamp and `arrival_to_publish_latency`
    is 0: the node overwrites both just before publishing, fusion_offline keeps them (an
    offline run must not depend on wall time). With `out`, that message is filled in place
    and returned: the node reuses one message for every output, because building a new
    FusionOutput with its header, transcript and per-modality states costs more Python time
    than all of the fusion (serialize or copy the result before the next call).
    """
    if out is None:
        out = FusionOutput()
    _set_stamp(out.header.stamp, fused.stamp)
    # Fields that rarely change are only written when they do (each write is a Python
    # property call; an arrival's whole budget is a few hundred microseconds).
    if out.header.frame_id != frame_id:
        out.header.frame_id = frame_id
    out.trigger_modality = fused.trigger_modality
    out.trigger_seq = fused.trigger_seq
    if out.strategy != fused.strategy:
        out.strategy = fused.strategy
    if out.labels != fused.labels:
        out.labels = list(fused.labels)
    out.scores = fused.scores.tolist()
    out.decision = fused.decision
    out.confidence = float(fused.confidence)
    out.valid = bool(fused.valid)
    states = out.modalities
    if len(states) != len(fused.modalities):
        states = out.modalities = [ModalityState() for _ in fused.modalities]
    for state, r in zip(states, fused.modalities):
        state.modality, state.present, state.stale = r.modality, r.present, r.stale
        _set_stamp(state.stamp, r.stamp)
        state.age, state.weight = float(r.age), float(r.weight)
        state.attention = float(fused.attention.get(r.modality, 0.0))
        state.seq, state.received = r.seq, r.received
        state.rejected, state.dropped = r.rejected, r.dropped
    if transcript is not None and transcript.final:
        out.transcript = transcript
        out.transcript_age = fused.stamp - stamp_to_sec(transcript.end)
    else:
        out.transcript, out.transcript_age = _NO_TRANSCRIPT, 0.0
    out.capture_to_output_latency = now - fused.stamp
    out.arrival_to_publish_latency = 0.0
    return out


class FusionNode(ManagedNode):
    """
    Fuse per-modality embeddings without ever waiting for a slow modality.

    A managed node (shared.lifecycle): configure builds the engine and its strategy
    (loading a learned strategy's model file), activate subscribes, deactivate
    unsubscribes and stops publishing while keeping every modality's state (ages count
    from capture stamps, so what aged meanwhile is stale when it resumes), cleanup clears
    the state.

    For every name in `modalities` it subscribes `<name>/embedding` (remap freely) with its
    own plain subscription: no synchroniser, so an audio embedding is fused and published
    at once even when the last camera embedding is old or missing. The ROS-free
    FusionEngine keeps per-modality state and recomputes only the arriving modality's
    contribution. Publishes `fusion_output` (FusionOutput) on every accepted arrival.

    On that path the node takes the embeddings' serialized bytes and publishes the
    output's bytes (fusion_wire): the same messages on the wire, at a fraction of the
    Python work of the message API (bench_fusion_node.py, part 3). The message API stays
    where it is needed: message_filters' synchroniser (policy sync), `fuse()` for
    fusion_offline, and an Embedding in an encoding fusion_wire does not read.
    """

    # Measured in bench_fusion_node.py (part 3): with the EventsExecutor this node takes
    # more arrivals a second before losing any, at less CPU, than with the
    # SingleThreadedExecutor, and no worse latency (spin_node's `executor` parameter).
    DEFAULT_EXECUTOR = 'events'

    def __init__(self, **node_options):
        """Declare parameters and subscribe; `node_options` go to rclpy's Node."""
        super().__init__('fusion', **node_options)
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        names = d('modalities', ['audio', 'vision'], 'Modalities to fuse; each subscribes '
                  '<name>/embedding.', read_only=True)
        d('strategy', 'speaking_to_robot', f'Fusion strategy: {", ".join(sorted(STRATEGIES))}.')
        d('model_path', '', 'File of the meta_learner or attention strategy (train_fusion '
          'writes it).')
        # Every strategy's options, declared from its defaults (PARAMS; the type follows the
        # default), e.g. strategy_params.speaking_to_robot.threshold: listable, settable from
        # the parameters file and at run time; the strategy itself checks the values.
        for strategy, cls in sorted(STRATEGIES.items()):
            for option, default in cls.PARAMS.items():
                d(f'strategy_params.{strategy}.{option}', default,
                  f'{strategy} strategy option (used while strategy is {strategy}); default '
                  f'{default!r}.')
        # REP 105: the fused output describes the robot's situation, not one sensor's view.
        self._frame_id = d('frame_id', 'base_link', 'frame_id of every FusionOutput (the '
                           "triggering sensors' frames stay in their Embeddings).",
                           read_only=True)
        policy = d('policy', 'async', "'async' fuses on every arrival; 'sync' waits for a set "
                   'within sync_slop (ApproximateTimeSynchronizer, the benchmark baseline).',
                   read_only=True)
        self._max_size = d('max_embedding_size', 65536, 'Embeddings with more values are '
                           'refused before they are converted.', read_only=True,
                           min_value=1, max_value=1 << 30)
        slop = d('sync_slop', 0.1, 'Seconds: the sync policy fuses sets this close together.',
                 min_value=0.0, max_value=10.0, read_only=True)
        # Encoders on other computers stamp with their own clocks: an offset beyond this is
        # reported (WARN in /diagnostics naming the publisher) instead of mis-ageing state.
        self._clock_tolerance = d('clock_offset_warn', 0.1, 'Seconds: a publisher whose '
                                  "clock seems this far ahead of or behind this node's "
                                  '(stamps vs. arrival) is reported in /diagnostics.',
                                  min_value=0.001, max_value=3600.0, read_only=True)
        for name in names:
            p = f'modality_params.{name}.'
            d(p + 'prior', 1.0, f'Prior weight of {name}.', min_value=0.0, max_value=1000.0)
            d(p + 'max_age', 2.0, f'Seconds after which {name} is stale and contributes '
              'nothing.', min_value=1e-3, max_value=3600.0)
            d(p + 'decay', 'exponential', f'Weight decay with age of {name}: exponential, '
              'linear or none.')
            d(p + 'time_constant', 1.0, f'Seconds, exponential decay of {name}.',
              min_value=1e-3, max_value=3600.0)
            d(p + 'dim', 0, f'Expected embedding length of {name}; 0 = not checked.',
              min_value=0, max_value=1 << 20)
            d(p + 'min_interval', 0.0, f'Minimum seconds between outputs triggered by {name} '
              '(rate limit for slow consumers; state is still updated).',
              min_value=0.0, max_value=3600.0)
        self._names = list(names)
        # With message_filters, it completes the sync sets and the engine fuses them as is.
        self._external_sync = policy == 'sync' and message_filters is not None
        self._slop = slop
        self._lock = threading.Lock()  # engine updates and reconfiguration are atomic
        self._engine = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for topic in [f'{n}/embedding' for n in self._names] + ['speech/transcript']:
            declare_subscription_qos_overrides(self, topic, EMBEDDING_QOS)
        self._pub = None
        self._subscriptions_made = []
        self._synchronizer = None

    # ------------------------------------------------------------------ lifecycle
    def configure_node(self):
        """Build the engine (a learned strategy loads its model file) and the publisher."""
        self._engine = FusionEngine(self._config_from({}))
        self._pub = self.lifecycle_publisher(FusionOutput, 'fusion_output', EMBEDDING_QOS)
        self._out = FusionOutput()  # filled in place for every output (fusion_output_msg)
        # The raw path's serializer: a new output shape is laid out from the message API's
        # FusionOutput of it, so both give the same bytes.
        self._writer = FusionOutputWriter(
            lambda fused, frame_id, transcript: fusion_output_msg(fused, frame_id, 0.0,
                                                                  transcript))
        # The clock's rcl handle, read directly: Clock.now() builds a Time object on the way,
        # which costs an arrival ~45 us more on cold caches (a 31 Hz stream: every arrival).
        # The same reading (sim time included); now_sec where an rclpy lacks the handle.
        handle = getattr(self.get_clock(), 'handle', None)
        self._now = ((lambda: handle.get_now().nanoseconds * 1e-9) if handle is not None
                     else partial(now_sec, self))
        # What was said last: every output carries the latest final transcript, so that a
        # planner reads one topic.
        self._transcript = Transcript()
        self._published = 0
        self._latencies = deque(maxlen=1000)  # capture_to_output of recent outputs
        self._bad = ThrottledLog(self)
        self._lost_told = False  # the log says once what fixes losses before the callback
        self._clocks = {n: ClockOffsetEstimator() for n in self._names}
        self._clock_told = set()  # publishers whose clock offset was logged once
        self.add_stage('input', self._input_diagnostics)
        self.add_stage('output', self._output_diagnostics)
        sync_by = ('message_filters.ApproximateTimeSynchronizer' if self._external_sync
                   else 'core.fusion.ApproximateSync'
                   if self._engine.config.policy == 'sync' else 'none')
        self.get_logger().info(
            f'configured: fusing {self._names} with {self._engine.config.strategy} '
            f'({self.get_parameter("policy").value} policy, synchroniser: {sync_by})')

    def activate_node(self):
        """Subscribe every modality's embeddings and the transcripts."""
        with self._lock:
            # What was not received while inactive is no loss before the callback.
            self._engine.restart_intake()
        if self._external_sync:
            # The baseline as ROS users know it: message_filters' synchroniser decides when a
            # set is complete; the engine then fuses the set without synchronising again.
            subs = [message_filters.Subscriber(self, Embedding, f'{n}/embedding',
                                               qos_profile=EMBEDDING_QOS) for n in self._names]
            self._synchronizer = message_filters.ApproximateTimeSynchronizer(
                subs, queue_size=10, slop=self._slop)
            self._synchronizer.registerCallback(self._on_synchronized_set)
            self._subscriptions_made = [s.sub for s in subs]
        else:
            # One plain subscription per modality: no arrival ever waits for another one.
            # Without message_filters, policy 'sync' is the engine's tested equivalent.
            # Raw: the callback gets the serialized Embedding and reads it with fusion_wire.
            self._subscriptions_made = [self.create_subscription(
                Embedding, f'{name}/embedding', partial(self._on_serialized, name),
                EMBEDDING_QOS, qos_overriding_options=qos_override(), raw=True)
                for name in self._names]
        # Finals are few and each matters: a plain reliable subscription; transcription_node
        # publishes it as `speech/transcript` at launch.
        self._subscriptions_made.append(self.create_subscription(
            Transcript, 'speech/transcript', self.take_transcript, EMBEDDING_QOS,
            qos_overriding_options=qos_override()))

    def deactivate_node(self):
        """Unsubscribe; the per-modality state is kept."""
        for sub in self._subscriptions_made:
            self.destroy_subscription(sub)
        self._subscriptions_made = []
        self._synchronizer = None

    def cleanup_node(self):
        """Forget the engine, its state and the strategy's model."""
        with self._lock:
            self._engine = None
        self._pub = None

    # ------------------------------------------------------------------ parameters
    def _config_from(self, overrides: dict) -> FusionConfig:
        """Build a FusionConfig from current parameters with `overrides` applied."""
        def get(name):
            return overrides[name] if name in overrides else self.get_parameter(name).value
        mods, min_interval = [], {}
        for name in self._names:
            p = f'modality_params.{name}.'
            mods.append(ModalityConfig(name=name, **{k: get(p + k) for k in _MODALITY_PARAMS}))
            min_interval[name] = float(get(p + 'min_interval'))
        strategy = get('strategy')
        if strategy not in STRATEGIES:
            raise ValueError(f'unknown strategy {strategy!r}; known: {sorted(STRATEGIES)}')
        prefix = f'strategy_params.{strategy}.'
        params = {k[len(prefix):]: v for k, v in self._all_params(overrides).items()
                  if k.startswith(prefix)}
        if get('model_path') and 'model_path' in STRATEGIES[strategy].PARAMS:
            params['model_path'] = get('model_path')
        return FusionConfig(modalities=mods, strategy=strategy, strategy_params=params,
                            policy='async' if self._external_sync else get('policy'),
                            sync_slop=float(get('sync_slop')), min_interval=min_interval)

    def _all_params(self, overrides: dict) -> dict:
        values = {f'strategy_params.{k}': p.value
                  for k, p in self.get_parameters_by_prefix('strategy_params').items()}
        values.update(overrides)
        return values

    def unused_parameter_reason(self, name: str) -> str:
        """Explain a given-but-undeclared parameter that is unused on purpose (else '')."""
        parts = name.split('.')
        if parts[0] == 'modality_params' and len(parts) == 3 and parts[1] not in self._names:
            return f"modality '{parts[1]}' is not in modalities {self._names}"
        return ''

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate a run-time change fully, then swap the configuration between arrivals."""
        overrides = {p.name: p.value for p in params}
        try:
            self._check_inactive_strategies(overrides)
            config = self._config_from(overrides)
            with self._lock:
                if self._engine is None:  # unconfigured: check, configure builds it later
                    FusionEngine(config)
                else:
                    self._engine.reconfigure(config)
        except (ValueError, TypeError, OSError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def _check_inactive_strategies(self, overrides: dict) -> None:
        """Refuse bad options of a strategy that is not active now, where that is possible."""
        active = overrides.get('strategy', self.get_parameter('strategy').value)
        values = self._all_params(overrides)
        for strategy in {k.split('.')[1] for k in overrides if k.startswith('strategy_params.')}:
            cls = STRATEGIES.get(strategy)
            # The learned strategies need their model file; they are checked when selected.
            if strategy == active or cls is None or 'model_path' in cls.PARAMS:
                continue
            prefix = f'strategy_params.{strategy}.'
            make_strategy(strategy, {k[len(prefix):]: v for k, v in values.items()
                                     if k.startswith(prefix)},
                          self._config_from(overrides).modalities)

    # ------------------------------------------------------------------ topology
    @property
    def input_topics(self) -> Dict[str, str]:
        """Return {resolved embedding topic: modality} of the modalities this node fuses."""
        return {self.resolve_topic_name(f'{n}/embedding'): n for n in self._names}

    @property
    def output_topic(self) -> str:
        """Return the resolved topic of the fused outputs."""
        return self._pub.topic_name

    # ------------------------------------------------------------------ arrivals
    def _on_synchronized_set(self, *msgs):
        # Fuse the whole set; the output belongs to the newest member, which completed it.
        entry = time.perf_counter()
        ordered = sorted(zip(self._names, msgs), key=lambda nm: stamp_to_sec(nm[1].header.stamp))
        for name, msg in ordered:
            self._on_embedding(name, msg, entry, publish=msg is ordered[-1][1])

    def fuse(self, name: str, msg: Embedding, now: float) -> Optional[FusionOutput]:
        """
        Fuse one Embedding that arrived on modality `name`'s topic at `now` (node clock).

        Returns the FusionOutput to publish, or None when the input was rejected or dropped
        (logged, throttled, and counted) or produced no output (rate limit, sync set not
        complete). The message API's way in, for message_filters and fusion_offline; the
        node's own subscriptions take the serialized bytes (`_on_serialized`), through the
        same checks and engine.
        """
        # Refused before the array is copied out of the message: a 10^7-float Embedding
        # must not cost the node its memory (the topic's slot counts it).
        if self._too_large(name, msg.seq, len(msg.data), len(msg.scores)):
            return None
        fused = self._update(name, embedding_to_input(msg), now)
        if fused is None:
            return None
        return fusion_output_msg(fused, self._frame_id, now, self._transcript, self._out)

    def _too_large(self, name: str, seq: int, size: int, scores: int) -> bool:
        """Count and log an input above max_embedding_size; return whether it is one."""
        if size <= self._max_size and scores <= self._max_size:
            return False
        self._engine.count(name, 'too_large', 'rejected')
        self._bad.warn((name, 'too_large'), f'rejected {name} embedding seq {seq} '
                       f'(too_large): {max(size, scores)} values > max_embedding_size '
                       f'{self._max_size}')
        return True

    def _update(self, name: str, inp: EmbeddingInput, now: float) -> Optional[FusionResult]:
        """Hand one input to the engine; return the result to publish, or None (counted)."""
        try:
            with self._lock:
                result = self._engine.update(inp, now, arrived_on=name)
        except Exception as err:  # noqa: BLE001 - one bad arrival must not stop fusion
            self._bad.warn((name, 'engine_error'), f'{name} embedding seq {inp.seq} could not '
                           f'be fused: {type(err).__name__}: {err}')
            return None
        if result.reset:
            self._transcript = Transcript()
            self.get_logger().warn('time jumped backwards (bag loop or sim time reset): '
                                   'all modality state reset')
        if not result.accepted:
            self._bad.warn((name, result.reason),
                           f'rejected {name} embedding seq {inp.seq} (modality '
                           f"'{inp.modality}'): {result.reason}")
            return None
        return result.output

    def take_transcript(self, msg: Transcript) -> None:
        """
        Keep a final Transcript for the outputs that follow (partials are ignored).

        The subscription callback, and fusion_offline for a bag's Transcripts.
        """
        if msg.final:  # partials stay on the transcript topic
            self._transcript = msg

    def _clock_started(self, name: str, seq: int, stamp: float, now: float) -> bool:
        """Return False (counted, logged) for an arrival before sim time has started."""
        if now <= 0.0 and stamp - now > self._engine.future_limit(name):
            # use_sim_time and no /clock yet: an encoder that got /clock first stamps far
            # ahead of this node's 0. Dropped and counted, not refused as from the future.
            self._engine.count(name, 'clock_not_started', 'dropped')
            self._bad.warn((name, 'clock_not_started'), f'dropped {name} embedding seq '
                           f'{seq}: use_sim_time and no /clock received yet')
            return False
        return True

    def _on_serialized(self, name: str, data: bytes):
        """Fuse a serialized Embedding and publish the output's bytes (the async path)."""
        entry = time.perf_counter()
        now = self._now()
        try:
            parsed = parse_embedding(data)
        except (ValueError, struct.error) as err:  # it ends early: not an Embedding
            self._engine.count(name, 'malformed', 'rejected')
            self._bad.warn((name, 'malformed'), f'rejected {name} embedding of {len(data)} '
                           f'bytes (malformed): {err}')
            return
        if parsed is None:  # an encoding fusion_wire does not read: the message API does
            try:
                msg = deserialize_message(data, Embedding)
            except Exception as err:  # noqa: BLE001 - one bad arrival must not stop fusion
                self._engine.count(name, 'malformed', 'rejected')
                self._bad.warn((name, 'malformed'), f'rejected {name} embedding of '
                               f'{len(data)} bytes (malformed): {err}')
                return
            self._on_embedding(name, msg, entry)
            return
        inp, latency = parsed
        if not self._clock_started(name, inp.seq, inp.stamp, now):
            return
        fused = None if self._too_large(name, inp.seq, inp.data.size, inp.scores.size) \
            else self._update(name, inp, now)
        if fused is not None:
            # One clock read per arrival: the node clock at entry plus the time spent since.
            spent = time.perf_counter() - entry
            delay = now - fused.stamp + spent
            data = self._writer.write(fused, self._frame_id, self._transcript, delay, spent)
            # What LifecyclePublisher.publish(bytes) does, without its three Python layers
            # (~55 us on cold caches): nothing while inactive, else publish the bytes.
            if self._pub.is_activated:
                self._pub.handle.publish_raw(data)
                self._published += 1
            self._latencies.append(delay)
        # The publisher's clock against ours (core.clock_offset): reported, never corrected;
        # noted after publishing, as it only feeds /diagnostics.
        self._clocks[name].add(now - inp.stamp, latency)

    def _on_embedding(self, name: str, msg: Embedding, entry: Optional[float] = None,
                      publish: bool = True):
        """Fuse an Embedding message and publish the FusionOutput message (message API)."""
        entry = time.perf_counter() if entry is None else entry
        now = self._now()
        stamp = stamp_to_sec(msg.header.stamp)
        if not self._clock_started(name, msg.seq, stamp, now):
            return
        # The publisher's clock against ours (core.clock_offset): reported, never corrected.
        self._clocks[name].add(now - stamp, msg.capture_to_publish_latency)
        out = self.fuse(name, msg, now)
        if out is None or not publish:
            return
        # One clock read per arrival: the node clock at entry plus the time spent since.
        spent = time.perf_counter() - entry
        out.capture_to_output_latency += spent
        out.arrival_to_publish_latency = spent
        self._pub.publish(out)
        self._published += 1
        self._latencies.append(out.capture_to_output_latency)

    def _input_diagnostics(self):
        now = now_sec(self)
        with self._lock:
            counters = self._engine.counters()
            reports = {r.modality: r for r in self._engine.evaluate(now).modalities}
        values = {}
        level, message = DiagnosticStatus.OK, 'ok'
        for name, c in counters.items():
            for key, value in c.items():
                values[f'{name}.{key}'] = value
        # Each modality's state with its reason, so a monitor sees why one contributes
        # nothing: absent (never received), stale (its last input older than max_age).
        problems = []
        for name, r in reports.items():
            max_age = self._engine.config.modalities[self._names.index(name)].max_age
            if not r.present:
                values[f'{name}.state'] = 'absent: nothing received yet'
            elif r.stale:
                values[f'{name}.state'] = (f'stale: last input {r.age:.2f} s old > max_age '
                                           f'{max_age:g} s')
                problems.append(f'{name} stale ({r.age:.1f} s old)')
            else:
                values[f'{name}.state'] = 'fresh'
            values[f'{name}.age'] = round(r.age, 3) if r.present else ''
        clocks = self._clock_offsets(values)
        if problems or clocks:
            level, message = DiagnosticStatus.WARN, '; '.join(clocks + problems)
        lost = {n: c['lost'] for n, c in counters.items() if c.get('lost')}
        if lost:
            level = DiagnosticStatus.WARN
            message = '; '.join(['arrivals lost before the callback'] + clocks + problems)
            if not self._lost_told:
                self._lost_told = True
                self.get_logger().warn(
                    f'embeddings lost before the fusion callback (gaps in their seq): {lost}; '
                    'the node falls behind its arrivals. A deeper subscription queue '
                    '(qos_overrides./<ns>/<modality>/embedding.subscription.depth, default '
                    f'{EMBEDDING_QOS.depth}) absorbs bursts; a sustained rate above what '
                    'bench_fusion_node.py measures needs a slower encoder (min_interval does '
                    'not help: it drops after the callback).')
        elif any(c.get('rejected', 0) for c in counters.values()) and level == \
                DiagnosticStatus.OK:
            level, message = DiagnosticStatus.WARN, 'inputs rejected'
        return level, message, values

    def _clock_offsets(self, values: dict) -> List[str]:
        """Report publishers whose clock is off ours beyond clock_offset_warn (and log once)."""
        lines = []
        for name, clock in self._clocks.items():
            offset = clock.estimate()
            values[f'{name}.clock_offset'] = '' if offset is None else round(offset, 3)
            offset = clock.judge(self._clock_tolerance)
            if offset is None:
                continue
            topic = self.resolve_topic_name(f'{name}/embedding')
            who = ', '.join(sorted(
                f"{i.node_namespace.rstrip('/')}/{i.node_name}"
                for i in self.get_publishers_info_by_topic(topic))) or topic
            way = 'ahead of' if offset < 0 else 'behind'
            line = f"clock of {who} ({name}) {abs(offset):.2f} s {way} this node's"
            lines.append(line)
            if who not in self._clock_told:
                self._clock_told.add(who)
                self.get_logger().warn(
                    f'{line}: its stamps {"lie in the future" if offset < 0 else "look old"} '
                    f'on arrival, so {name} is aged wrongly (stale too early or too late, '
                    "future stamps refused). Synchronise the computers' clocks (chrony or "
                    'PTP; see README, Across machines).')
        return lines

    def _output_diagnostics(self):
        values = {'published': self._published, 'strategy': self._engine.config.strategy,
                  'topic': self.output_topic,
                  'subscribers': self._pub.get_subscription_count()}
        if self._latencies:
            lat = np.asarray(self._latencies) * 1e3
            values.update(latency_p50_ms=round(float(np.percentile(lat, 50)), 2),
                          latency_p99_ms=round(float(np.percentile(lat, 99)), 2))
        return DiagnosticStatus.OK, 'ok', values


def main(args=None):
    """Run the fusion node."""
    spin_node(FusionNode, args)


if __name__ == '__main__':
    main()
