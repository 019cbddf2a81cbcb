"""Template helpers available in every template (registered as builtins)."""

from django import template

from pattern_lab.runs import charts

register = template.Library()


@register.filter
def get(mapping, key):
    """{{ dict|get:key }}"""
    try:
        return mapping.get(key) if hasattr(mapping, "get") else mapping[key]
    except (KeyError, IndexError, TypeError):
        return None


@register.filter
def ms(value):
    """Milliseconds for people: 1500 -> 1.5 s, 10000 -> 10 s, 80 -> 80 ms."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return value
    return f"{round(value / 1000, 2):g} s" if value >= 1000 else f"{value:.0f} ms"


@register.filter
def pct(value, total=None):
    """A share as a percentage: 0.25 -> 25%, or value/total."""
    try:
        share = float(value) / float(total) if total is not None else float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return "–"
    return f"{share * 100:.1f}%"


@register.filter
def scale(value, args):
    """Linear scale for SVG charts: {{ v|scale:"0,100,0,50" }} maps 0..100 to 0..50."""
    try:
        lo, hi, a, b = (float(x) for x in args.split(","))
        v = float(value)
    except (TypeError, ValueError):
        return 0
    if hi == lo:
        return a
    return round(a + (min(max(v, lo), hi) - lo) * (b - a) / (hi - lo), 2)


@register.filter
def sparkline(values, args="100,20"):
    """SVG polyline points for a list of numbers, in a box w,h (max at the top)."""
    try:
        w, h = (float(x) for x in str(args).split(","))
        vals = [float(v) for v in values]
    except (TypeError, ValueError):
        return ""
    if not vals:
        return ""
    top = max(max(vals), 1e-9)
    step = w / max(len(vals) - 1, 1)
    return " ".join(f"{i * step:.1f},{h - v / top * h:.1f}" for i, v in enumerate(vals))


@register.filter
def xy(pos, node_id):
    """'x,y' of a node in the cluster drawing."""
    x, y = pos.get(node_id, (0, 0))
    return f"{x:.1f},{y:.1f}"


@register.simple_tag
def ws_url(name, *args):
    """{% ws_url 'run' rid %}: the path of a websocket route (pattern_lab/routing.py),
    as {% url %} gives the path of an HTTP one."""
    from django.urls import reverse

    return reverse(name, urlconf="pattern_lab.routing", args=args)


# Chart geometry for the labs' panels (pattern_lab/runs/charts.py):
#   {% polyline series top slots %}   {% level value top %}   {% steps series top height %}
#   {% ticks marks span as paths %}
register.simple_tag(charts.polyline, name="polyline")
register.simple_tag(charts.level, name="level")
register.simple_tag(charts.steps, name="steps")
register.simple_tag(charts.ticks, name="ticks")
register.simple_tag(charts.bloom_chart, name="bloom_chart")
register.simple_tag(charts.bloom_bits, name="bloom_bits")
