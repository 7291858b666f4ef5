"""A KerasTuner-style model function, as users write them: a small ResNet whose depth,
width, dropout and learning rate are hyperparameters, compiled inside the function.  It
runs unchanged under KerasTuner (``keras_tuner.RandomSearch(build_model, ...)``) and
under cnn-search (``--model tests/models/kt_resnet.py:build_model``)."""

import keras
from keras import layers


def build_model(hp):
    inputs = keras.Input(shape=(8, 8, 1))
    filters = hp.Choice("filters", [8, 16, 32], default=16)
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    for _ in range(hp.Int("blocks", 1, 3, default=1)):
        y = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        y = layers.Conv2D(filters, 3, padding="same")(y)
        x = layers.Activation("relu")(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    if hp.Boolean("dense_head"):
        with hp.conditional_scope("dense_head", [True]):
            x = layers.Dense(hp.Int("dense_units", 16, 64, step=16), activation="relu")(x)
    x = layers.Dropout(hp.Float("dropout", 0.0, 0.5, default=0.1))(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hp.Choice("lr", [1e-3, 3e-3, 1e-2], default=3e-3)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def build_sometimes_broken(hp):
    """Uncompiled, logits out, and it fails to build for one of its draws (as a model
    with a shape mistake does): those trials fail with the reason, the search goes on."""
    inputs = keras.Input(shape=(8, 8, 1))
    width = hp.Int("width", 4, 12, step=4, default=8)
    if width == 12:
        raise ValueError("width 12 is not supported by this block")
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(10)(x))


def build_wrong_classes(hp):
    inputs = keras.Input(shape=(8, 8, 1))
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(layers.Flatten()(inputs)))


def not_a_model(hp):
    return "a model"
