"""Sessions: their record in Redis, the lock, the driver loop, and starting or resuming one.

* :mod:`ttrpg.session.store`: ids, the metadata hash, listing, creating, status in words.
* :mod:`ttrpg.session.lock`: one driver per session (``SET NX PX``, renewed) and its fence.
* :mod:`ttrpg.session.driver`: the loop that runs the graph, asks the DM, handles failures.
* :mod:`ttrpg.session.play`: what ``ttrpg play|resume|demo`` call.
"""
