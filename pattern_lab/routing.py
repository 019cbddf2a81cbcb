"""The websocket routes (daphne's URLRouter); templates name them with
{% ws_url 'run' rid %} (runs/templatetags/labtags.py)."""

import os

from django.urls import path

from pattern_lab.runs.consumers import RunConsumer
from pattern_lab.teach.consumers import ClassConsumer

websocket_urlpatterns = [
    path("ws/runs/<str:run_id>/", RunConsumer.as_asgi(), name="run"),
    path("ws/class/<str:code>/", ClassConsumer.as_asgi(), name="class"),
]

if os.environ.get("PATTERN_LAB_BENCH") == "1":  # the benchmark's baseline consumer
    from pattern_lab.bench.stock import StockForwarder

    websocket_urlpatterns.append(path("ws/bench/stock/<str:group>/", StockForwarder.as_asgi()))

# For reverse(name, urlconf="pattern_lab.routing"): the {% ws_url %} tag.
urlpatterns = websocket_urlpatterns
