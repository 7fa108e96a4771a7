from surveys.admin import accounts, api_requests, feedback, inbound_webhooks, survey_requests  # noqa: F401  (registers the admins)
