"""Domain code shared by the API and the workers: settings, models, repositories, services."""
