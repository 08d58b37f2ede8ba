"""Category pretraining: corpus -> TextCNN topic classifier -> prompt-table checkpoint (Pretrained / Encoder IPT)."""

from ipt_ray.pretrain.pipeline import (  # noqa: F401
    PACKAGED_MANIFEST,
    VENDORED_KNOWLEDGE_CAT,
    WIKIPEDIA_CATEGORIES,
    CATEGORY_DESCRIPTIONS,
    PretrainError,
    Manifest,
    load_manifest,
    Corpus,
    load_source,
    build_corpus,
    heldout_split,
    tokenize_corpus,
    CategoryClassifier,
    confusion_matrix,
    train_classifier,
    save_prompt_table,
    PretrainResult,
    run_pretrain,
    sentence_embeddings,
    suggest_label_mapping,
)

__all__ = ['PACKAGED_MANIFEST', 'VENDORED_KNOWLEDGE_CAT', 'WIKIPEDIA_CATEGORIES', 'CATEGORY_DESCRIPTIONS', 'PretrainError', 'Manifest', 'load_manifest', 'Corpus', 'load_source', 'build_corpus', 'heldout_split', 'tokenize_corpus', 'CategoryClassifier', 'confusion_matrix', 'train_classifier', 'save_prompt_table', 'PretrainResult', 'run_pretrain', 'sentence_embeddings', 'suggest_label_mapping']
