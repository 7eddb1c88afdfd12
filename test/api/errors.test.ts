// Every class of misuse is a FastdiffError with a code and a message naming the
// op and the shapes — never a crash.
import * as fd from "../../lib";

function error(fn: () => unknown): fd.FastdiffError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(fd.FastdiffError);
    return e as fd.FastdiffError;
  }
  throw new Error("expected an error");
}

test("shape mismatches name the op and both shapes", () => {
  fd.scope(() => {
    const e = error(() => fd.matmul(fd.zeros([2, 3]), fd.zeros([4, 5])));
    expect(e.code).toBe("ERR_SHAPE");
    expect(e.message).toMatch(/matmul.*\[2, 3\].*\[4, 5\]/);
    expect(error(() => fd.add(fd.zeros([2, 3]), fd.zeros([4]))).message).toMatch(/add.*\[2, 3\].*\[4\]/);
    expect(error(() => fd.conv2d(fd.zeros([1, 3, 8, 8]), fd.zeros([4, 2, 3, 3]))).code).toBe("ERR_SHAPE");
    expect(error(() => fd.reshape(fd.zeros([2, 3]), [4, 2])).message).toMatch(/reshape.*\[2, 3\]/);
    expect(error(() => fd.mulAdd(fd.zeros([2, 3]), fd.zeros([3]), fd.zeros([4]))).message)
      .toBe("mul_add: shapes [2, 3] and [4] cannot be broadcast together");
    expect(error(() => fd.groupNorm(fd.zeros([2, 6, 4]), 4)).message).toMatch(/6 channels/);
    expect(error(() => fd.layerNorm(fd.zeros([2, 3, 4]), fd.zeros([3, 4]))).message)
      .toBe("layer_norm: weight [3, 4] is neither [4] nor [2, 4] for input [2, 3, 4]");
    expect(error(() => fd.layerNorm(fd.zeros([2, 3, 4]), fd.zeros([2, 4]), fd.zeros([4]))).message)
      .toBe("layer_norm: weight [2, 4] and bias [4] must both be shared [D] or both per sample [B, D]");
    expect(error(() => fd.attention(fd.zeros([1, 2, 3, 4]), fd.zeros([1, 2, 5, 8]), fd.zeros([1, 2, 5, 4]))).code).toBe("ERR_SHAPE");
    // tokens-major: heads on axis 2 must agree (here 2 vs 3), and the message gives that layout
    expect(error(() => fd.attention(fd.zeros([1, 3, 2, 4]), fd.zeros([1, 5, 3, 4]), fd.zeros([1, 5, 3, 4]), { layout: "bnhd" })).message)
      .toMatch(/attention: expected q \[B, Nq, H, D\].*\[1, 3, 2, 4\], \[1, 5, 3, 4\]/);
    const badLayout = error(() => fd.attention(fd.zeros([1, 1, 1, 1]), fd.zeros([1, 1, 1, 1]), fd.zeros([1, 1, 1, 1]), { layout: "nhd" as "bnhd" }));
    expect([badLayout.code, badLayout.message]).toEqual(["ERR_ARGUMENT", 'attention: layout must be "bhnd" or "bnhd", got "nhd"']);
    expect(error(() => fd.linear(fd.zeros([2, 3]), fd.zeros([4, 5]))).message).toMatch(/linear/);
    expect(error(() => fd.tensor(new Float32Array(5), [2, 3])).code).toBe("ERR_SHAPE");
  });
});

test("bad axes", () => {
  fd.scope(() => {
    expect(error(() => fd.sum(fd.zeros([2, 3]), 2)).message).toMatch(/sum: axis 2 is out of range/);
    expect(error(() => fd.permute(fd.zeros([2, 3]), [0, 0])).code).toBe("ERR_SHAPE");
    expect(error(() => fd.concat([fd.zeros([2]), fd.zeros([2])], 3)).code).toBe("ERR_SHAPE");
    expect(error(() => fd.softmax(fd.zeros([2, 3]), -3)).code).toBe("ERR_SHAPE");
  });
});

test("disposed tensors", () => {
  const x = fd.ones([3]);
  x.dispose();
  expect(x.isDisposed).toBe(true);
  const e = error(() => fd.exp(x));
  expect(e.code).toBe("ERR_DISPOSED");
  expect(e.message).toMatch(/exp/);
  expect(error(() => x.dataSync()).code).toBe("ERR_DISPOSED");
  x.dispose(); // disposing twice is harmless
});

test("wrong argument types from JS", () => {
  fd.scope(() => {
    expect(error(() => fd.exp({} as unknown as fd.Tensor)).code).toBe("ERR_ARGUMENT");
    expect(error(() => fd.add(1, 2)).code).toBe("ERR_ARGUMENT");
    expect(error(() => fd.zeros([2, -1])).code).toBe("ERR_ARGUMENT");
    expect(error(() => fd.zeros("3" as unknown as number[])).code).toBe("ERR_ARGUMENT");
    expect(error(() => fd.conv2d(fd.zeros([1, 1, 4, 4]), fd.zeros([1, 1, 3, 3]), null, { stride: 0 })).code).toBe("ERR_ARGUMENT");
    expect(error(() => fd.embedding(fd.zeros([4, 2]), [1, 7])).message).toMatch(/label 7 is out of range for 4 classes/);
    expect(error(() => fd.randn([2], { seed: -1 })).code).toBe("ERR_ARGUMENT");
    expect(error(() => fd.setIsa("sse9" as fd.Isa)).code).toBe("ERR_ARGUMENT");
    expect(error(() => new fd.Adam([])).code).toBe("ERR_ARGUMENT");
    // Straight to the binding, bypassing TS validation: C++ still checks.
    const native = require("../../lib/native").native;
    expect(error(() => native.unary("nope", fd.zeros([1]).handle)).code).toBe("ERR_ARGUMENT");
    expect(error(() => native.conv2d(fd.zeros([1, 1, 4, 4]).handle, 5, null, [1, 1], [0, 0], [1, 1], 1)).code).toBe("ERR_ARGUMENT");
    expect(error(() => native.full([1.5], 0)).code).toBe("ERR_ARGUMENT");
  });
});

test("kernel-side failures surface at the next sync point with the op's name", async () => {
  const x = fd.tensor([1, NaN, 3]);
  fd.checkFinite(x, "loss");
  const e = error(() => fd.synchronize());
  expect(e.code).toBe("ERR_NUMERIC");
  expect(e.message).toMatch(/checkFinite: loss \[3\] has a non-finite value .* at flat index 1/);
  fd.synchronize(); // reported once, then cleared
  fd.checkFinite(x, "again");
  await expect(x.data()).rejects.toMatchObject({ code: "ERR_NUMERIC" });
  x.dispose();
});

test("absurd sizes are refused, not aborted", () => {
  expect(error(() => fd.zeros([1 << 20, 1 << 20, 1 << 20])).code).toBe("ERR_SHAPE");
  expect(["ERR_MEMORY", "ERR_SHAPE"]).toContain(error(() => fd.zeros([1 << 30, 1 << 9])).code);
});
