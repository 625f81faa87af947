"""State estimation for forces moving along a route.

Every force has the state ``x = [s, v]``: ``s`` in km along its route and ``v`` in km/day.
Field reports measure ``z = s + noise`` (km, variance ``r`` in km²) at irregular times
``t`` in days. All estimators here are batched: they loop over the time index only and
vectorise over forces with arrays shaped ``(F, N)``, ``(F, N, 2)`` and ``(F, N, 2, 2)``.

Modules
-------
``warroom.estimate.kalman``
    Nearly-constant-velocity model (``ncv_transition``, ``ncv_process_noise``), the batched
    Kalman filter ``kalman_filter`` returning a ``KalmanResult``, and the
    Rauch–Tung–Striebel smoother ``rts_smoother``.
``warroom.estimate.imm``
    Interacting multiple model filter ``imm_filter`` over three regimes (halted,
    advancing, pursuit), parameterised by ``IMMParams`` and returning an ``IMMResult``.
"""
