from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("ledger.csv", views.ledger_csv, name="ledger_csv"),
]
