from surveys.admin import api_requests, survey_requests  # noqa: F401  (registers the admins)
