from opsgate.routing.health import Circuit, CircuitState, Health, RateWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_circuit_opens_after_threshold_and_probes_once_after_cooldown() -> None:
    clock = FakeClock()
    c = Circuit(threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        c.on_failure()
    assert c.state is CircuitState.CLOSED
    c.on_failure()
    assert c.state is CircuitState.OPEN
    assert not c.allows()
    clock.now += 10
    assert c.state is CircuitState.HALF_OPEN
    assert c.allows()
    c.on_start()
    assert not c.allows(), "only one probe at a time"
    c.on_failure()
    assert c.state is CircuitState.OPEN, "a failed probe re-opens at once"
    clock.now += 10
    c.on_start()
    c.on_success()
    assert c.state is CircuitState.CLOSED
    assert c.failures == 0


def test_success_resets_consecutive_failures() -> None:
    c = Circuit(threshold=2, cooldown=1, clock=FakeClock())
    c.on_failure()
    c.on_success()
    c.on_failure()
    assert c.state is CircuitState.CLOSED


def test_rate_window_caps_requests_and_tokens_per_minute() -> None:
    clock = FakeClock()
    w = RateWindow(rpm=2, tpm=100, clock=clock)
    w.add_request()
    assert w.has_room()
    w.add_request()
    assert not w.has_room()
    clock.now += 60
    assert w.has_room()
    w.add_tokens(100)
    assert not w.has_room()


def test_health_tracks_latency_errors_and_load() -> None:
    clock = FakeClock()
    h = Health(Circuit(5, 30, clock), RateWindow(None, None, clock))
    h.on_start()
    assert h.in_flight == 1
    h.on_success(0.5, stream=False)
    h.on_start()
    h.on_success(1.5, stream=False)
    assert h.latency is not None and 0.5 < h.latency < 1.5
    assert h.ttft is None
    h.on_start()
    h.on_failure("timeout")
    assert h.in_flight == 0
    assert h.errors == 1 and h.last_error == "timeout" and h.error_rate > 0
    h.on_start()
    h.on_failure("status_400", counts=False)
    assert h.errors == 1, "a client error says nothing about the deployment"


def test_cooling_follows_retry_after() -> None:
    clock = FakeClock()
    h = Health(Circuit(5, 30, clock), RateWindow(None, None, clock))
    h.cool(3)
    assert h.cooling_for() == 3
    clock.now += 5
    assert h.cooling_for() == 0
