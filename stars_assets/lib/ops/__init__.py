"""Operations logic as plain functions: what the sensors, schedules and alerting in defs/ops decide."""
