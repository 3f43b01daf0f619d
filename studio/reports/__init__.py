"""A run's reports: importance, correlation, the AI report and its PDF (`service.Reports`)."""
