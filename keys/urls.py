from django.urls import path

from keys import views

app_name = "keys"

urlpatterns = [
    path("", views.key_list, name="list"),
    path("new/", views.key_new, name="new"),
    path("<int:key_id>/", views.key_edit, name="edit"),
    path("<int:key_id>/rotate/", views.key_rotate_view, name="rotate"),
    path("<int:key_id>/revoke/", views.key_revoke_view, name="revoke"),
]
