"""Audio-visual synchronisation of a clip: SyncNet's offset and confidence (Sync-C / Sync-D).

``network`` is SyncNet's architecture (Chung & Zisserman 2016, VGG-M style, MIT), ``mfcc`` its
audio features, ``offset`` the search over audio shifts that turns embeddings into an offset, a
confidence and a distance, and ``scorer`` the clip scorer of the ``sync`` stage.
"""
