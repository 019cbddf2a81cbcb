"""Redis keys and scripts shared by the web processes and the workers.

run:<id>:lease    the actor's lease: its fencing token, with a short TTL
run:<id>:fence    counter handing out fencing tokens
run:<id>:inbox    name of the wake-up list of the worker driving the run; it
                  receives "<id> cmd" (new commands), "<id> ctl" (clock), "<id>
                  step", "<id> view" (a viewer arrived)
run:<id>:steps    how many single steps the owner asked for (frozen clock)
run:<id>:full     the latest full frame (sent to every socket that (re)connects)
run:<id>:pos      "t seq" of the latest published frame (where a new actor resumes)
run:<id>:watched  set while a daphne process has viewers of the run (TTL)
run:<id>:starting set while an actor task is queued (de-duplicates the queueing)
run:<id>:worker   pid of the worker process driving the run (for operators and tests)
run:<id>:ok       "1" while all the run's checks hold, else "0" (set with each frame)
worker:<host>:<pid>:inbox  one worker's wake-up list (its scheduler blocks on it)
frames:<id>       pub/sub channel with every frame, "<seq>|<message>"

A frame's message and its "<seq>|" framing over Redis are wire.py's (pack,
unpack): run:<id>:full and frames:<id> carry exactly what wire.pack() wrote.
"""

from functools import cache

import redis
from django.conf import settings

FRAME_TTL_S = 24 * 3600


def lease(run_id): return f"run:{run_id}:lease"
def fence(run_id): return f"run:{run_id}:fence"
def inbox(run_id): return f"run:{run_id}:inbox"
def steps(run_id): return f"run:{run_id}:steps"
def full(run_id): return f"run:{run_id}:full"
def pos(run_id): return f"run:{run_id}:pos"
def watched(run_id): return f"run:{run_id}:watched"
def starting(run_id): return f"run:{run_id}:starting"
def frames(run_id): return f"frames:{run_id}"
def worker(run_id): return f"run:{run_id}:worker"
def ok(run_id): return f"run:{run_id}:ok"  # "1" while every check of the run holds (class dashboards)


@cache
def client() -> redis.Redis:
    """The process's synchronous Redis client (thread-safe connection pool)."""
    return redis.Redis.from_url(settings.REDIS_URL, health_check_interval=30,
                                socket_connect_timeout=2, socket_timeout=10)


# Publish a frame only while holding the lease: the fencing token check and the
# writes happen atomically inside Redis, so an actor that lost its lease (a
# paused or partitioned worker) can never overwrite the new owner's frames.
# KEYS: lease, full, pos, frames channel, ok (optional).  ARGV: token, the
# frame to publish and the full frame (both as wire.pack() wrote them, stored
# and published unchanged), "t seq", ttl, "1"/"0" (all checks hold).
PUBLISH = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[2], ARGV[3], 'EX', ARGV[5])
redis.call('set', KEYS[3], ARGV[4], 'EX', ARGV[5])
redis.call('publish', KEYS[4], ARGV[2])
if KEYS[5] then redis.call('set', KEYS[5], ARGV[6], 'EX', ARGV[5]) end
return 1
"""

# Extend the lease only if it is still ours.
RENEW = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('pexpire', KEYS[1], ARGV[2])
return 1
"""

# Give the lease back only if it is still ours.
RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('del', KEYS[1])
"""

# Take a free lease: a new fencing token, never below `floor` (the last token
# the database saw, so tokens keep growing after Redis lost its counters).
# ARGV: floor, ttl, and optionally the caller's current token: a lease that
# is already the caller's is kept (and extended) as it is.
ACQUIRE = """
local cur = redis.call('get', KEYS[1])
if cur and cur == ARGV[3] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return tonumber(cur)
end
if cur then return 0 end
local floor = tonumber(ARGV[1])
if tonumber(redis.call('get', KEYS[2]) or '0') < floor then redis.call('set', KEYS[2], floor) end
local token = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], token, 'PX', ARGV[2])
return token
"""

# A worker's leases all at once.  KEYS: lease, watched, lease, watched, ...
# ARGV: ttl, token, token, ...  Per run: 2 held and watched, 1 held, 0 someone
# else's, -1 gone (expired, or Redis restarted).
RENEW_ALL = """
local out = {}
for i = 1, #KEYS, 2 do
  local cur = redis.call('get', KEYS[i])
  if cur == ARGV[(i + 1) / 2 + 1] then
    redis.call('pexpire', KEYS[i], ARGV[1])
    out[#out + 1] = 1 + redis.call('exists', KEYS[i + 1])
  elseif cur then
    out[#out + 1] = 0
  else
    out[#out + 1] = -1
  end
end
return out
"""

# Wake the worker that drives a run (KEYS[1] = run:<id>:inbox), if any.
WAKE = """
local box = redis.call('get', KEYS[1])
if not box then return 0 end
redis.call('rpush', box, ARGV[1])
return 1
"""
