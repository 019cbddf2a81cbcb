import os

from django.urls import path

from pattern_lab.runs.consumers import RunConsumer
from pattern_lab.teach.consumers import ClassConsumer

websocket_urlpatterns = [
    path("ws/runs/<str:run_id>/", RunConsumer.as_asgi()),
    path("ws/class/<str:code>/", ClassConsumer.as_asgi()),
]

if os.environ.get("PATTERN_LAB_BENCH") == "1":  # the benchmark's baseline consumer
    from pattern_lab.bench.stock import StockForwarder

    websocket_urlpatterns.append(path("ws/bench/stock/<str:group>/", StockForwarder.as_asgi()))
