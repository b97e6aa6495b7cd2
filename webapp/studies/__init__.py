"""The human-agreement tabs: Studies (admins), Label (annotators and admins), Agreement (admins)."""
