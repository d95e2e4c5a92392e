"""The pure core: rules, models, formats and plans. No storage, no Azure SDK."""
