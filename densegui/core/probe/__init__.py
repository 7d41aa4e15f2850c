"""The timing probe: settings and results (plain data), the timing loop and the profiler breakdown."""
