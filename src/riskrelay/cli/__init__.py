"""The `riskrelay` command: dev stack, publish, tail, classify, escalation plan, report, dlq replay."""
