"""The admin's pages for collections and documents (registered on import)."""

from documents.admin.collections import CollectionAdmin
from documents.admin.documents import DocumentAdmin

__all__ = ["CollectionAdmin", "DocumentAdmin"]
