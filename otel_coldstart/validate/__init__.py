"""The validator: read cold-start traces, judge them against targets, explain the result."""
