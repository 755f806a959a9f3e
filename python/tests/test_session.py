"""The sans-I/O session on a fake clock: handshakes with every auth method,
tasks and streamed responses, cancel, deadlines on both sides, heartbeats,
drain, and a connection cut at every byte offset of a conversation followed
by resume (nothing lost, nothing duplicated)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from symwire import codec as c  # noqa: E402
from symwire.session import Acceptor, Config, Session, SymwireError  # noqa: E402


def configs(auth="none", secret=b""):
    return (Config(agent_id="orch", role=0, auth=auth, secret=secret, seed=1),
            Config(agent_id="agent", role=1, auth=auth, secret=secret, seed=2))


class Pair:
    """An initiator and an acceptor registry joined by an in-memory pipe that
    can be cut after `cut` bytes (both directions counted together)."""

    def __init__(self, auth="none", secret=b"", cut=None):
        ci, ca = configs(auth, secret)
        self.now = 0
        self.i = Session("initiator", ci)
        self.reg = Acceptor(ca)
        self.cut = cut
        self.moved = 0
        self.events_i, self.events_a = [], []
        self.dial()

    def dial(self):
        self.a, a_out = self.reg.new_connection(self.now)
        self.to_a = bytearray(self.i.connect(self.now))
        self.to_i = bytearray(a_out)
        self.up = True

    def _move(self, data):
        if self.cut is None or not self.up:
            return bytes(data)
        room = self.cut - self.moved
        if room <= 0:
            return None
        piece = bytes(data[:room])
        self.moved += len(piece)
        return piece

    def lose(self):
        self.up = False
        self.cut = None
        self.i.lost(self.now)
        self.a.lost(self.now)
        self.to_a.clear()
        self.to_i.clear()

    def pump(self, app=None, limit=200):
        for _ in range(limit):
            if not self.to_a and not self.to_i:
                return
            if self.to_a:
                data, self.to_a = bytes(self.to_a), bytearray()
                piece = self._move(data)
                if piece is None:
                    return self.lose()
                self.a, out = self.reg.receive(self.a, piece, self.now)
                self.to_i += out
                self._events(self.a, self.events_a, app)
                if len(piece) < len(data):
                    return self.lose()
            if self.to_i:
                data, self.to_i = bytes(self.to_i), bytearray()
                piece = self._move(data)
                if piece is None:
                    return self.lose()
                self.to_a += self.i.receive(piece, self.now)
                self._events(self.i, self.events_i, None)
                if len(piece) < len(data):
                    return self.lose()
        raise AssertionError("the pair does not settle")

    def _events(self, s, sink, app):
        for e in s.take_events():
            sink.append(e)
            if app and e.type == "TaskReceived":
                self.to_i += app(self.a, e)

    def advance(self, us):
        self.now += us
        self.to_a += self.i.on_timer(self.now)
        self.to_i += self.a.on_timer(self.now)
        self.pump()


def echo_three(s, e):
    t = e.task
    return (s.respond(t, b"part1 " + e.fields["payload"], False)
            + s.respond(t, b"part2", False) + s.respond(t, b"done", True))


class HandshakeTest(unittest.TestCase):
    def test_every_auth_method(self):
        for auth, secret in (("none", b""), ("token", b"tok"), ("hmac", bytes(range(32)))):
            with self.subTest(auth=auth):
                p = Pair(auth, secret)
                p.pump()
                self.assertEqual(p.i.state, "established")
                self.assertEqual(p.a.state, "established")
                self.assertEqual(p.events_i[0].type, "Established")

    def test_wrong_secret_is_unauthenticated(self):
        ci, ca = configs("token", b"right")
        ci.secret = b"wrong"
        i, reg = Session("initiator", ci), Acceptor(ca)
        a, a_out = reg.new_connection()
        a, out = reg.receive(a, i.connect(), 0)
        self.assertEqual(a.state, "failed")
        i.receive(a_out + out, 0)
        self.assertEqual(i.state, "failed")
        self.assertEqual(i.failure.name, "UNAUTHENTICATED")
        self.assertEqual(i.failure.code, 16)


class TaskTest(unittest.TestCase):
    def test_streamed_responses(self):
        p = Pair()
        p.pump()
        task, data = p.i.submit(b"x")
        p.to_a += data
        p.pump(echo_three)
        got = [(e.fields["payload"], e.fields["final"]) for e in p.events_i
               if e.type == "ResponseReceived"]
        self.assertEqual(got, [(b"part1 x", 0), (b"part2", 0), (b"done", 1)])
        self.assertEqual(p.i.tasks, {})

    def test_cancel(self):
        p = Pair()
        p.pump()
        task, data = p.i.submit(b"x")
        p.to_a += data
        p.pump()
        p.to_a += p.i.cancel(task)
        p.pump()
        self.assertIn("TaskCancelled", [e.type for e in p.events_a])
        self.assertEqual(p.i.tasks, {})
        self.assertEqual(p.a.tasks, {})

    def test_deadline_on_both_sides(self):
        p = Pair()
        p.pump()
        task, data = p.i.submit(b"x", deadline_us=1_000_000)
        p.to_a += data
        p.pump()
        p.now += 1_000_000
        # The executor's deadline fires first here (same clock): its error ends the task.
        p.to_i += p.a.on_timer(p.now)
        p.pump()
        failed = [e for e in p.events_i if e.type == "TaskFailed"]
        self.assertEqual([(e.task, e.fields["status"]) for e in failed],
                         [(task, "DEADLINE_EXCEEDED")])
        # The submitter's own deadline: it cancels with reason 4.
        task2, data = p.i.submit(b"y", deadline_us=500)
        p.to_a += data
        p.pump()
        p.now += 500
        p.to_a += p.i.on_timer(p.now)
        p.pump()
        self.assertIn(("TaskCancelled", "DEADLINE_EXCEEDED"),
                      [(e.type, e.fields.get("status")) for e in p.events_a
                       if e.task == task2])
        self.assertEqual(p.a.tasks, {})

    def test_heartbeat_and_ack_delay(self):
        p = Pair()
        p.pump()
        p.advance(10_000_000)
        self.assertIsNotNone(p.i.srtt)
        self.assertEqual(p.i.state, "established")
        task, data = p.i.submit(b"x")
        p.to_a += data
        p.pump(echo_three)
        p.advance(5_000)          # the ack delay: both sides acknowledge
        self.assertEqual(p.i.replay, [])
        self.assertEqual(p.a.replay, [])

    def test_dead_peer(self):
        p = Pair()
        p.pump()
        p.now += 30_000_000
        p.i.on_timer(p.now)
        self.assertEqual(p.i.state, "disconnected")

    def test_submit_while_disconnected_waits_for_the_resume(self):
        p = Pair()
        p.pump()
        p.lose()
        task, data = p.i.submit(b"late")
        self.assertEqual(data, b"")              # held in the replay buffer
        p.dial()
        p.pump(echo_three)
        got = [e.fields["payload"] for e in p.events_i if e.type == "ResponseReceived"]
        self.assertEqual(got, [b"part1 late", b"part2", b"done"])

    def test_drain_and_bye(self):
        p = Pair()
        p.pump()
        p.to_a += p.i.close(p.now)
        p.pump()
        self.assertEqual(p.i.state, "closed")
        self.assertEqual(p.a.state, "closed")
        # The transport's end after the bye does not reopen the session.
        p.i.lost(p.now)
        self.assertEqual(p.i.state, "closed")
        self.assertIsNone(p.i.next_timer())


class DrainTest(unittest.TestCase):
    def test_tasks_after_the_executors_drain_are_refused(self):
        # §15.3: the agent drains; a task that crosses its drain is not run
        # but answered UNAVAILABLE, retryable, detail PEER_DRAINING; the task
        # it was running finishes, then both sides close.
        p = Pair()
        p.pump()
        first, data = p.i.submit(b"before")
        p.to_a += data
        p.pump()
        late, data = p.i.submit(b"crossing")       # sent before the drain arrives
        p.to_i += p.a.close(p.now)
        p.to_a += data
        p.pump()
        runs = [e.task for e in p.events_a if e.type == "TaskReceived"]
        self.assertEqual(runs, [first])
        failed = [e for e in p.events_i if e.type == "TaskFailed"]
        self.assertEqual([(e.task, e.fields["code"], e.fields["detail_name"],
                           e.fields["retryable"]) for e in failed],
                         [(late, 14, "PEER_DRAINING", True)])
        self.assertIn("PeerDraining", [e.type for e in p.events_i])
        p.to_i += p.a.respond(first, b"done", True, p.now)
        p.pump()
        p.advance(5_000)
        self.assertEqual((p.i.state, p.a.state), ("closed", "closed"))

class LimitsTest(unittest.TestCase):
    """What the session enforces against a hostile peer, as the C++ session
    does (SPEC.md §14.1, §15.1, §15.2): each limit ends the session (or the
    connection) with its error, and a conforming peer never reaches it."""

    def established(self, **agent_cfg):
        p = Pair()
        for k, v in agent_cfg.items():
            setattr(p.reg.config, k, v)
        p.a, out = p.reg.new_connection(p.now)     # again, with the changed config
        p.to_i = bytearray(out)
        p.pump()
        self.assertEqual((p.i.state, p.a.state), ("established", "established"))
        return p

    def assertFailed(self, p, name):
        self.assertEqual(p.a.state, "failed")
        self.assertEqual(p.a.failure.name, name)
        # The peer was told (a stream-0 AGENT_ERROR with the detail).
        self.assertEqual(p.i.state, "failed")
        self.assertEqual(p.i.failure.name, name)

    def test_ping_flood(self):
        p = self.established()
        for k in range(3):          # the first ping, then two strikes: allowed
            p.to_a += p.i._sync({2: k})
            p.pump()
        self.assertEqual(p.a.state, "established")
        p.to_a += p.i._sync({2: 3})                # the third strike
        p.pump()
        self.assertFailed(p, "PING_FLOOD")
        self.assertEqual(p.a.failure.code, 8)      # RESOURCE_EXHAUSTED

    def test_pings_at_half_the_interval_are_no_strikes(self):
        p = self.established()
        for k in range(10):
            p.to_a += p.i._sync({2: k})
            p.pump()
            p.now += 500_000                       # half of min_peer_ping_interval
        self.assertEqual(p.a.state, "established")
        self.assertEqual(p.a.ping_strikes, 0)

    def test_frames_carrying_nothing_new(self):
        p = self.established()
        for _ in range(100):                        # max_noop_frames: allowed
            p.to_a += p.i._sync({})
        p.pump()
        self.assertEqual(p.a.state, "established")
        task, data = p.i.submit(b"x")               # an accepted frame resets the count
        p.to_a += data
        p.pump()
        self.assertEqual(p.a.noop_frames, 0)
        for _ in range(100):
            p.to_a += data                          # duplicates count too
        p.to_a += p.i._sync({})
        p.pump()
        self.assertFailed(p, "PING_FLOOD")
        self.assertIn("101 frames in a row carry nothing new (limit 100)",
                      p.i.failure.message or str(p.a.events))

    def test_task_limit(self):
        p = self.established(max_tasks=2)
        p.i.peer[10] = 100                          # a peer that ignores the credit
        for _ in range(3):
            task, data = p.i.submit(b"x")
            p.to_a += data
        p.pump()
        self.assertFailed(p, "TASK_LIMIT_EXCEEDED")

    def test_task_slots_return_with_the_ack(self):
        p = self.established(max_tasks=2)
        for k in range(10):                         # 5 x max_tasks, two at a time
            for _ in range(2):
                task, data = p.i.submit(b"%d" % k)
                p.to_a += data
            p.pump(echo_three)
        self.assertEqual(p.a.state, "established")
        finals = [e for e in p.events_i if e.type == "ResponseReceived" and e.fields["final"]]
        self.assertEqual(len(finals), 20)

    def test_payload_above_the_limit(self):
        p = self.established(max_payload_bytes=100)
        p.i.peer[8] = 1 << 20                       # a peer that ignores the limit
        task, data = p.i.submit(b"z" * 101)
        p.to_a += data
        p.pump()
        self.assertFailed(p, "PAYLOAD_TOO_LARGE")

    def test_framing_error_ends_only_the_connection(self):
        p = self.established()
        task, data = p.i.submit(b"hello")
        bad = bytearray(data)
        bad[-9] ^= 0x01                             # a payload byte: its XXH3 fails
        p.a, out = p.reg.receive(p.a, bytes(bad), p.now)
        self.assertEqual((p.a.state, p.a.up, out), ("disconnected", False, b""))
        lost = [e for e in p.a.take_events() if e.type == "ConnectionLost"]
        self.assertEqual(lost[-1].fields["error"], "PAYLOAD_CHECKSUM_MISMATCH")
        p.i.lost(p.now)                             # the initiator sees the close
        p.to_a.clear()
        p.to_i.clear()
        p.dial()                                    # and resumes: the task is replayed
        p.pump(echo_three)
        got = [e.fields["payload"] for e in p.events_i if e.type == "ResponseReceived"]
        self.assertEqual(got, [b"part1 hello", b"part2", b"done"])

    def test_oversized_payload_header_ends_the_session(self):
        p = self.established(max_payload_bytes=100)
        p.i.peer[8] = 1 << 20
        task, data = p.i.submit(b"z" * 9000)       # above 8192 too: the decoder's check
        p.to_a += data
        p.pump()
        self.assertFailed(p, "PAYLOAD_TOO_LARGE")

    def test_local_refusals(self):
        # §15.1, §15.2, §5.1: refused before anything is sent, nothing changes.
        p = self.established(max_tasks=3, max_payload_bytes=100)
        refusals = []

        def refused(payload, **kw):
            before = (p.i.next_task, p.i.next_seq, dict(p.i.tasks))
            with self.assertRaises(SymwireError) as err:
                p.i.submit(payload, **kw)
            self.assertEqual(before, (p.i.next_task, p.i.next_seq, dict(p.i.tasks)))
            e = err.exception
            refusals.append((e.name, e.code, e.symwire_code))
        p.i.submit(b"1")
        p.i.config.replay_frames = 1                # one frame unacknowledged: full
        refused(b"2")
        p.i.config.replay_frames = 65536
        refused(b"z" * 101)
        refused(b"m", method="bad name")
        p.i.submit(b"2")
        p.i.submit(b"3")
        refused(b"4")
        self.assertEqual(refusals, [("REPLAY_BUFFER_FULL", 8, 115),
                                    ("FRAME_TOO_LARGE", 3, 124),
                                    ("INVALID_FRAME", 3, 19), ("NO_CREDIT", 8, 114)])

    def test_handshake_bytes_bound(self):
        ci, ca = configs()
        i, reg = Session("initiator", ci), Acceptor(ca, max_handshake_bytes=100)
        a, a_out = reg.new_connection()
        hello = i.connect()
        self.assertGreater(len(hello), 100)
        a, out = reg.receive(a, hello[:100], 0)     # up to the bound: fed
        self.assertEqual(a.state, "handshaking")
        a, out = reg.receive(a, hello[100:], 0)     # past it: not fed, ended
        self.assertEqual((a.state, a.failure.name, a.connection_ended),
                         ("failed", "RESOURCE_EXHAUSTED", True))
        self.assertIn("max_handshake_bytes 100", a.failure.message)
        i.receive(a_out + out, 0)
        self.assertEqual((i.state, i.failure.code), ("failed", 8))
        self.assertEqual(reg.handshaking, {})

    def test_handshakes_and_sessions_bound(self):
        ci, ca = configs()
        reg = Acceptor(ca, max_handshakes=1, max_sessions=1)

        def handshake():
            i = Session("initiator", Config(**dict(ci.__dict__, seed=None)))
            a, a_out = reg.new_connection()
            a, out = reg.receive(a, i.connect(), 0)
            a, out2 = reg.receive(a, i.receive(a_out + out, 0), 0)
            i.receive(out2, 0)
            return i, a
        i1, a1 = handshake()
        self.assertEqual((i1.state, a1.state), ("established", "established"))
        c, _ = reg.new_connection()                  # one handshaking: the bound
        with self.assertRaises(SymwireError) as err:
            reg.new_connection()
        self.assertEqual(err.exception.name, "RESOURCE_EXHAUSTED")
        reg.connection_closed(c)
        i2, a2 = handshake()                         # one session registered: refused
        self.assertEqual((a2.state, a2.failure.name), ("failed", "RESOURCE_EXHAUSTED"))
        self.assertEqual((i2.state, i2.failure.code), ("failed", 8))
        a1.receive(i1.receive(a1.close(0), 0), 0)    # the first one ends ...
        self.assertEqual(a1.state, "closed")
        i3, a3 = handshake()                         # ... and leaves room
        self.assertEqual((i3.state, a3.state), ("established", "established"))

    def test_frame_timeout(self):
        p = self.established(frame_timeout_us=1_000_000)
        task, data = p.i.submit(b"x" * 50)
        for k in range(len(data) - 1):              # one byte every 0.1 s: never whole
            p.a, out = p.reg.receive(p.a, data[k:k + 1], p.now)
            p.a.on_timer(p.now)
            if not p.a.up:
                break
            p.now += 100_000
        self.assertFalse(p.a.up)
        self.assertEqual(p.a.state, "disconnected")  # the session resumes (§16)
        lost = [e for e in p.a.take_events() if e.type == "ConnectionLost"]
        self.assertIn("incomplete", lost[-1].fields["message"])
        self.assertEqual(p.now, 1_000_000)

    def test_terminal_ack_coalesced_then_ahead_of_the_task_that_needs_it(self):
        # §15.1: the ack of a terminal frame is coalesced (no SYNC of its own
        # per task), but precedes a task that would find max_tasks full, so a
        # submitter at full credit never exceeds it.
        p = self.established(max_tasks=1)
        task, data = p.i.submit(b"x")
        p.to_a += data
        p.pump(echo_three)
        self.assertEqual(len(p.a.replay), 3)        # not acknowledged yet
        task, data = p.i.submit(b"y")
        info: dict = {}
        opts = c.Options()
        opts.preface = False
        c.decode_frame(data, 0, opts, info, log=False)
        self.assertEqual(info["type"], c.AGENT_SYNC)  # the ack goes first
        p.to_a += data
        p.pump(echo_three)
        self.assertFalse([e for e in p.events_a if e.type == "SessionFailed"])
        self.assertEqual(len(p.a.replay), 3)        # the second task's frames
        p.advance(p.i.config.ack_delay_us)          # the ack timer sends the rest
        self.assertEqual(p.a.replay, [])


class CutEverywhereTest(unittest.TestCase):
    """Cut the connection after every byte count of a conversation (handshake,
    one task, three responses, acks), then reconnect and finish it: the
    executor runs the task once, the submitter sees each part once."""

    def conversation(self, cut):
        p = Pair(cut=cut)
        p.pump(echo_three)
        task = None
        runs = []

        def app(s, e):
            runs.append(e.task)
            return echo_three(s, e)
        for _ in range(4):
            if p.i.state == "established" and task is None:
                task, data = p.i.submit(b"x")
                p.to_a += data
            p.pump(app)
            if p.up:
                p.advance(5_000)
            if not p.up:
                p.dial()
                p.pump(app)
        p.advance(5_000)
        parts = [e.fields["payload"] for e in p.events_i if e.type == "ResponseReceived"]
        return p, runs, parts

    def test_every_offset(self):
        _, runs, parts = self.conversation(None)
        self.assertEqual(parts, [b"part1 x", b"part2", b"done"])
        full = Pair()
        full.pump()
        total = 2000
        for cut in range(0, total):
            p, runs, parts = self.conversation(cut)
            if p.moved < cut and cut > 0:
                break                      # the conversation is shorter than the cut
            with self.subTest(cut=cut):
                self.assertEqual(runs, [runs[0]] if runs else [], "task ran twice")
                self.assertEqual(parts, [b"part1 x", b"part2", b"done"])
        self.assertGreater(cut, 300)


if __name__ == "__main__":
    unittest.main()
