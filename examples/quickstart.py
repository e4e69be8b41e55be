"""cae from Python: train the lecture's autoencoder, put its codes to use, generate, export.

    pip install ./python scikit-learn
    CAE_DATA=path/to/data python examples/quickstart.py   # or cae download mnist first

Takes about a minute on two cores (one epoch on 20 000 digits).
"""

import numpy as np
from sklearn.linear_model import LogisticRegression

import cae

# 1. Train: the same run `cae train-ae --out runs/quickstart-ae --epochs 1 --train-limit 20000`
#    makes, with a line per epoch (a bar too when tqdm is installed).
ae = cae.train_autoencoder("runs/quickstart-ae", epochs=1, train_limit=20000, seed=0, force=True)
print(ae)

# 2. Encode: 784 pixels become 10 numbers.
train_x, train_y = cae.load_dataset("mnist", split="train")
test_x, test_y = cae.load_dataset("mnist", split="test")
z_train, z_test = ae.encode(train_x[:20000]), ae.encode(test_x)
print("codes:", z_train.shape, z_train.dtype)

# 3. Compute on the small code separately (the lecture's point): a linear classifier on it.
clf = LogisticRegression(max_iter=2000).fit(z_train, train_y[:20000])
print(f"logistic regression on the codes: {100 * clf.score(z_test, test_y):.1f} % test accuracy")

# 4. Generate through the decoder: the mean code of each digit, decoded.
means = np.stack([z_train[train_y[:20000] == d].mean(axis=0) for d in range(10)])
digits = ae.decode(means)  # float32 [10, 1, 28, 28] in [0, 1]
print("decoded class means:", digits.shape)
print("\n".join("".join(" .:#"[min(3, int(v * 4))] for v in row[::2]) for row in digits[3, 0, ::2]))

# 5. Export for PyTorch and ONNX.
ae.export("runs/quickstart-ae.safetensors")  # load_state_dict(safetensors.torch.load_file(...))
ae.export("runs/quickstart-encoder.onnx", format="onnx", part="encoder")
print("anomaly scores of the first test digits:", ae.anomaly_scores(test_x[:5]).round(4))
